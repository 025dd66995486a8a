"""Choosing what ``--backend auto`` runs for a model: a measurement on validation data.

``select_backend`` (run by ``detente train`` and ``detente retrain`` at the end, and by
``detente select-backend``) exports the model, quantizes int8 candidates, and measures
each one's stance-label agreement with torch fp32, its macro-F1 change and its
statements/s on the validation statements (tuned on validation, never on test). It writes
``selection.json`` into the model's ONNX cache, keyed to the weights' hash: the fastest
backend that keeps ``RULE``, with the int8 settings that achieved it and the measurements.
The choice asks for ``SELECTION_MARGIN`` more agreement than the rule so that the rule
holds on statements it never saw. ``model.backends.loading`` follows that file.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from model.backends import TorchBackend, cache, quantize
from model.backends.onnx_runtime import open_session
from model.classifier import Classifier
from model.config import DetenteConfig
from model.errors import BackendError, DataError
from model.persistence import check_model_folder, load_model, weights_hash
from training.bundled_data import selection_data_file
from training.data import load_labelled
from training.metrics import macro_f1

log = logging.getLogger("detente.backends")

MIN_AGREEMENT = 0.99  # stance labels equal to torch fp32's on at least 99 % of statements
MAX_F1_DROP = 0.005  # and at most 0.5 stance macro-F1 points lost (validation split)
RULE = ">= 99% stance-label agreement with torch fp32 and <= 0.5 stance macro-F1 points lost"
# The rule must hold on statements the choice never saw, but ~550 validation statements
# measure agreement only to about +-0.4 points, so picking the first candidate that scrapes
# past 99 % picks the luckiest: the choice asks for this much more (evidence in
# benchmarks/results/notes_from_code.md).
SELECTION_MARGIN = 0.005
# Int8 candidates tried in order: per-channel int8 with the k encoder MatMuls that int8
# hurts most left in fp32 (see _measure_shortlist). The first that qualifies ends the
# ladder: every further step keeps more of the graph in fp32, so it is slower.
SELECTION_LADDER = (0, 1, 2, 3, 4, 6, 9, 12)
SELECTION_MAX_ROWS = 1000  # a larger validation set is sampled down (seeded): cost bound
RANKING_ROWS = 64  # statements whose activations rank the MatMuls
# The simulated ranking's top nodes are then measured, each quantized alone, on this many
# statements: the simulation alone misorders them (notes_from_code.md).
SENSITIVITY_SHORTLIST = 12
SENSITIVITY_ROWS = 128


def is_acceptable(candidate: dict, margin: float = 0.0) -> bool:
    """Whether a benchmarked backend meets the rule (see the module docstring).

    ``candidate`` has ``backend``, ``stance_agreement`` (vs torch fp32) and
    ``macro_f1_drop`` (torch fp32's stance macro-F1 minus the candidate's on the selection
    data, in [0, 1], or None when the data had no gold labels). Without gold labels the
    F1 rule cannot be checked, so only the fp32 backends qualify. ``margin`` raises the
    agreement needed (``SELECTION_MARGIN`` when choosing; 0 when checking a choice).
    """
    if candidate["stance_agreement"] < MIN_AGREEMENT + margin:
        return False
    drop = candidate.get("macro_f1_drop")
    if drop is None:
        return candidate["backend"] in ("torch", "onnx")
    return drop <= MAX_F1_DROP


def choose_fastest(candidates: list[dict], margin: float = 0.0) -> dict:
    """The acceptable candidate with the highest ``statements_per_s`` (torch if none is)."""
    acceptable = [c for c in candidates if is_acceptable(c, margin)]
    if not acceptable:
        return {"backend": "torch", "statements_per_s": None, "reason": "no candidate qualified"}
    return max(acceptable, key=lambda c: c["statements_per_s"])


def argmax_macro_f1(
    probs: np.ndarray, gold: Sequence[str | None], labels: Sequence[str]
) -> float | None:
    """``training.metrics.macro_f1`` of the argmax labels (None: no row has a gold label)."""
    labels = list(labels)
    return macro_f1(gold, [labels[int(row.argmax())] for row in probs], labels)


@dataclass
class _Reference:
    """Torch fp32's outputs and scores on the selection data."""

    stance: np.ndarray
    sentiment: np.ndarray
    stance_f1: float | None
    sentiment_f1: float | None


def _timed(predict: Callable[[], tuple[np.ndarray, np.ndarray]], n: int):
    started = time.perf_counter()
    out = predict()
    return out, n / max(time.perf_counter() - started, 1e-9)


def _candidate(
    variant: str, backend: str, int8: dict | None, probs: tuple[np.ndarray, np.ndarray],
    rate: float, ref: _Reference, stance_gold, sentiment_gold, config: DetenteConfig,
) -> dict:
    stance, sentiment = probs
    stance_f1 = argmax_macro_f1(stance, stance_gold, config.stance_labels)
    sentiment_f1 = argmax_macro_f1(sentiment, sentiment_gold, config.sentiment_labels)
    row = {
        "variant": variant, "backend": backend, "int8": int8, "statements_per_s": rate,
        "stance_agreement": float((stance.argmax(1) == ref.stance.argmax(1)).mean()),
        "sentiment_agreement": float((sentiment.argmax(1) == ref.sentiment.argmax(1)).mean()),
        "max_abs_prob_diff": float(max(np.abs(stance - ref.stance).max(),
                                       np.abs(sentiment - ref.sentiment).max())),
        "stance_macro_f1": stance_f1,
        "macro_f1_drop": None if stance_f1 is None or ref.stance_f1 is None
        else ref.stance_f1 - stance_f1,
        "sentiment_macro_f1_drop": None if sentiment_f1 is None or ref.sentiment_f1 is None
        else ref.sentiment_f1 - sentiment_f1,
    }
    row["qualifies"] = is_acceptable(row, SELECTION_MARGIN)
    return row


def select_backend(
    model: str | Path,
    texts: Sequence[str],
    stance_gold: Sequence[str | None],
    *,
    sentiment_gold: Sequence[str | None] | None = None,
    source: str = "validation split",
    batch_size: int = 32,
    max_rows: int = SELECTION_MAX_ROWS,
    ladder: Sequence[int] = SELECTION_LADDER,
    seed: int = 0,
    write: bool = True,
) -> dict:
    """Measure the backends of a model folder on labelled statements and pick ``auto``'s.

    ``texts`` and the gold labels must be held-out statements the model was not tuned on and
    that are not its test set: the validation split. Candidates: torch fp32 (the reference),
    ONNX fp32, and per-channel dynamic int8 leaving the k encoder MatMuls that int8 hurts
    most in fp32 for k in ``ladder`` (the first that qualifies ends the ladder). Each is run
    on the same statements, timed, and compared with torch: stance and sentiment label
    agreement, largest probability difference, macro-F1 change. The fastest that meets
    ``RULE`` wins (``choose_fastest``); the two fastest qualifying ONNX contenders are timed
    once more, interleaved, so that one noisy pass does not decide. Unless ``write`` is
    False the result goes to ``selection.json`` next to the cached graphs, with every
    candidate's numbers; only the winner's int8 graph stays in the cache. Returns that
    record.
    """
    started = time.perf_counter()
    folder = Path(model).resolve()
    check_model_folder(folder)
    version = weights_hash(folder)
    sentiment_gold = list(sentiment_gold) if sentiment_gold is not None else [None] * len(texts)
    rows = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
    if not rows:
        raise ValueError("select_backend needs at least one non-empty statement")
    if len(rows) > max_rows:
        rows = sorted(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
    texts = [texts[i] for i in rows]
    stance_gold = [stance_gold[i] for i in rows]
    sentiment_gold = [sentiment_gold[i] for i in rows]
    n = len(texts)

    model, tokenizer = load_model(folder)
    classifier = Classifier(TorchBackend(model, tokenizer, version), path=folder)
    config = classifier.config
    (stance, sentiment), torch_rate = _timed(
        lambda: classifier.predict_proba(texts, batch_size), n)
    ref = _Reference(stance, sentiment, argmax_macro_f1(stance, stance_gold, config.stance_labels),
                     argmax_macro_f1(sentiment, sentiment_gold, config.sentiment_labels))
    args = (ref, stance_gold, sentiment_gold, config)
    candidates = [_candidate("torch", "torch", None, (stance, sentiment), torch_rate, *args)]
    model = classifier = None  # free the torch weights before the ONNX sessions load
    ranking: list[tuple[str, float]] = []
    backends: dict[str, object] = {}
    notes: list[str] = []
    try:
        fp32 = cache.ensure_fp32(folder, version)
        onnx = Classifier(open_session(fp32, tokenizer, config, version, "onnx"), path=folder)
        probs, rate = _timed(lambda: onnx.predict_proba(texts, batch_size), n)
        candidates.append(_candidate("onnx", "onnx", None, probs, rate, *args))
        backends["onnx"] = onnx
    except BackendError as err:
        fp32 = None
        notes.append(f"{err}; --backend auto will use torch for this model")
    built: dict[str, tuple[Path, quantize.Int8Config]] = {}
    work = Path(tempfile.mkdtemp(prefix=".select-", dir=fp32.parent)) if fp32 else None
    try:
        if fp32 is not None:
            ranking = quantize.rank_by_quantization_error(
                fp32, tokenizer, texts[:RANKING_ROWS], batch_size=batch_size,
                max_length=config.max_seq_length, seed=seed)
            ranking = _measure_shortlist(ranking, fp32, tokenizer, config, texts, work,
                                         batch_size)
            for k in ladder:
                int8 = quantize.Int8Config(True, tuple(name for name, _ in ranking[:k]))
                variant = "onnx-int8/per-channel" + (f"-fp32-top{k}" if k else "")
                path = work / f"{int8.tag()}.onnx"
                quantize.quantize_int8(fp32, path, int8)
                backend = Classifier(
                    open_session(path, tokenizer, config, version, "onnx-int8"), path=folder)
                probs, rate = _timed(lambda b=backend: b.predict_proba(texts, batch_size), n)
                row = _candidate(variant, "onnx-int8", int8.to_dict(), probs, rate, *args)
                candidates.append(row)
                built[variant] = (path, int8)
                if row["qualifies"]:
                    backends[variant] = backend  # kept for the second timing
                    break
            _retime(candidates, backends, texts, batch_size)
    except BackendError as err:
        notes.append(f"int8 candidates skipped: {err}")
    chosen = choose_fastest(candidates, SELECTION_MARGIN)
    try:
        if chosen.get("variant") in built:
            path, int8 = built[chosen["variant"]]
            cache.store_int8(folder, version, int8, path)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    for note in notes:
        log.warning("%s", note)
    selection = {
        "backend": chosen["backend"],
        "variant": chosen.get("variant", chosen["backend"]),
        "int8": chosen.get("int8"),
        "rule": RULE,
        "selection_margin": f"chosen with >= {100 * (MIN_AGREEMENT + SELECTION_MARGIN):.1f}% "
        "agreement on the selection data, so that the rule holds on unseen statements",
        "evidence": {key: chosen.get(key) for key in (
            "statements_per_s", "stance_agreement", "sentiment_agreement", "macro_f1_drop",
            "sentiment_macro_f1_drop", "max_abs_prob_diff")},
        "data": {"source": source, "statements": n,
                 "stance_labelled": sum(g in config.stance_labels for g in stance_gold)},
        "candidates": candidates,
        "int8_error_ranking": [[name, round(score, 5)] for name, score in ranking[:12]],
        "int8_ranking_method": f"simulated int8 error (depth-weighted) on {RANKING_ROWS} "
        f"statements, then the top {SENSITIVITY_SHORTLIST} measured one at a time on "
        f"{SENSITIVITY_ROWS}: mean absolute change of the stance probabilities",
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average": [round(x, 2)
                                                            for x in os.getloadavg()]},
        "seconds": round(time.perf_counter() - started, 1),
    }
    if notes:
        selection["notes"] = notes
    if write:
        selection["file"] = str(cache.write_selection(folder, version, selection))
    return selection


def _measure_shortlist(
    ranking: list[tuple[str, float]], fp32: Path, tokenizer, config: DetenteConfig,
    texts: list[str], work: Path, batch_size: int,
) -> list[tuple[str, float]]:
    """Reorder the simulated ranking's top nodes by their measured effect on the labels."""
    shortlist = [name for name, _ in ranking[:SENSITIVITY_SHORTLIST]]
    measured = quantize.rank_sensitive_nodes(
        fp32, tokenizer, config, texts[:SENSITIVITY_ROWS], work / "sensitivity",
        batch_size=batch_size, candidates=shortlist)
    return measured + [item for item in ranking if item[0] not in set(shortlist)]


def _retime(candidates: list[dict], backends: dict, texts: list[str], batch_size: int) -> None:
    """Time the two fastest qualifying ONNX candidates again, alternately; keep each best."""
    contenders = sorted(
        (c for c in candidates if c["qualifies"] and c["variant"] in backends),
        key=lambda c: -c["statements_per_s"])[:2]
    if len(contenders) < 2:
        return
    for row in contenders:
        backend = backends[row["variant"]]
        _, rate = _timed(lambda b=backend: b.predict_proba(texts, batch_size), len(texts))
        row["statements_per_s"] = max(row["statements_per_s"], rate)


def select_backend_on_file(model: str | Path, data: str | Path, **kwargs) -> dict:
    """``select_backend`` on the ``split == "validation"`` rows of a labelled file.

    Refuses a file without a validation split rather than tuning on test or train rows.
    """
    frame = load_labelled(data)
    if "split" not in frame.columns or not (frame["split"] == "validation").any():
        raise DataError(
            f"{data} has no rows with split=validation; the backend is chosen on held-out "
            "validation statements, never on the test split"
        )
    frame = frame[frame["split"] == "validation"]
    sentiment = frame["sentiment"].tolist() if "sentiment" in frame.columns else None
    return select_backend(model, frame["text"].tolist(), frame["stance"].tolist(),
                          sentiment_gold=sentiment, source=f"validation split of {data}",
                          **kwargs)


def describe_selection(selection: dict) -> str:
    """One line for the terminal: what ``auto`` will use and the measurements behind it."""
    rows = {c["variant"]: c for c in selection.get("candidates", [])}
    chosen = rows.get(selection.get("variant"), {})
    parts = [f"--backend auto -> {selection.get('variant', selection.get('backend'))}"]
    if chosen:
        drop = chosen.get("macro_f1_drop")
        f1 = "n/a" if drop is None else f"{-100 * drop:+.2f}"
        parts.append(
            f"stance agreement with torch {chosen['stance_agreement']:.2%}, macro-F1 "
            f"{f1} points, {chosen['statements_per_s']:.0f} statements/s")
    others = ", ".join(
        f"{name} {row['statements_per_s']:.0f}/s ({row['stance_agreement']:.2%}"
        f"{'' if row.get('qualifies') else ', short of the rule with its margin'})"
        for name, row in rows.items() if name != selection.get("variant"))
    if others:
        parts.append(f"vs {others}")
    data = selection.get("data", {})
    parts.append(f"measured on {data.get('statements', '?')} statements "
                 f"({data.get('source', '?')}) in {selection.get('seconds', '?')} s")
    return "; ".join(parts)


def ensure_default_choice(folder: Path) -> dict | None:
    """Choose ``auto``'s backend for the default model when its choice is missing or stale.

    The default model's backend is chosen when it is trained; a newer detente that exports
    graphs differently (``cache.GRAPH_FORMAT``) invalidates that choice. Redoing it takes
    about half a minute on the bundled real statements' validation split, once.
    """
    if cache.read_selection(folder, weights_hash(folder)) is not None:
        return None
    data = selection_data_file()
    if not data.is_file():
        return None
    print("Choosing the fastest scoring backend for the default model on the validation "
          "split (once, about half a minute) ...", file=sys.stderr)
    try:
        selection = select_backend_on_file(folder, data)
    except Exception as err:  # an optimisation: ONNX fp32 gives torch's labels without it
        log.warning("backend selection failed (%s); --backend auto runs ONNX fp32", err)
        return None
    print(describe_selection(selection), file=sys.stderr)
    return selection
