"""Choosing and loading an inference backend: torch, ONNX Runtime fp32 or dynamic int8.

``auto`` is data driven, per model. ``select_backend`` (run by ``detente train`` at the
end, on the validation split: tuned on validation, never on test) exports the model,
quantizes int8 candidates, measures each one's stance-label agreement with torch fp32,
its macro-F1 change and its statements/s on the validation statements, and writes
``selection.json`` into the model's ONNX cache, keyed to the weights' hash: the fastest
backend that keeps at least 99 % stance-label agreement with torch fp32 and loses at most
0.5 stance macro-F1 points, with the int8 settings that achieved it and the measurements.
The choice asks for 99.5 % agreement on validation (``SELECTION_MARGIN``) so that the
99 % holds on statements it never saw.
``detente retrain`` makes the same choice for the model it writes, and ``detente
select-backend --model FOLDER`` makes it for any model folder (on the validation split of
``--data``, the bundled real statements by default). ``auto`` follows that file when it matches the
weights' hash and the export format; without it (a model trained with
``select_backend=False`` or copied without its cache) ``auto`` means ONNX fp32, which gives
the same probabilities as torch (within 1e-4) faster, and falls back to torch if the model
cannot be exported. The default model's choice is made again, once, when it is missing.
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
from typing import Protocol

import numpy as np

from model.config import DetenteConfig

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
log = logging.getLogger("detente.score")


class Backend(Protocol):
    """What scoring needs from a backend (``TorchBackend`` or ``OnnxBackend``)."""

    name: str
    tokenizer: object
    config: DetenteConfig
    model_version: str

    def predict_proba(
        self, texts: list[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]: ...


class TorchBackend:
    """``Classifier.predict_proba``: length-sorted batches, dynamic padding, inference mode."""

    name = "torch"

    def __init__(self, classifier, model_version: str | None = None) -> None:
        self.classifier = classifier
        self.tokenizer = classifier.tokenizer
        self.config = classifier.config
        if model_version is not None:  # already hashed by resolve_backend: don't read 90 MB again
            classifier._version = model_version
        self.model_version = classifier.model_version

    def predict_proba(
        self, texts: list[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.classifier.predict_proba(texts, batch_size)


def resolve_model_dir(model: str | Path | None) -> Path:
    """The model folder; ``None`` is the default model (trained first if absent)."""
    if model is None:
        from training.default_model import ensure_default_model

        return Path(ensure_default_model())
    return Path(model)


@dataclass(frozen=True)
class ResolvedBackend:
    """A concrete backend for a model folder, its graph (if ONNX) ready in the cache."""

    folder: Path
    name: str
    version: str
    int8: object = None
    graph: Path | None = None


def resolve_backend(model: str | Path | None = None, backend: str = "auto") -> ResolvedBackend:
    """Turn ``auto`` into a concrete backend and export/quantize its graph if needed.

    Done once in the driver of a Ray job, so workers only load what is already cached.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    from model.persistence import check_model_folder, weights_hash

    folder = resolve_model_dir(model).resolve()
    check_model_folder(folder)
    version = weights_hash(folder)
    if backend == "torch":
        return ResolvedBackend(folder, "torch", version)
    from serve import onnx_backend as ox

    selection = ox.read_selection(folder, version)
    if selection is None and backend == "auto" and model is None:
        selection = _select_for_default_model(folder)
    selection = selection or {}
    int8 = ox.Int8Config.from_dict(selection.get("int8"))
    name = backend
    if backend == "auto":
        name = selection.get("backend") if selection.get("backend") in BACKENDS[1:] else "onnx"
        if name == "torch":
            return ResolvedBackend(folder, "torch", version)
    try:
        if name == "onnx":
            graph = ox.ensure_fp32(folder, version)
        else:
            graph = ox.ensure_int8(folder, version, int8)
    except ox.OnnxError as err:
        if backend != "auto":
            raise
        log.warning("%s; scoring with torch instead", err)
        return ResolvedBackend(folder, "torch", version)
    return ResolvedBackend(folder, name, version, int8, graph)


def _select_for_default_model(folder: Path) -> dict | None:
    """Choose ``auto``'s backend for the default model when its choice is missing or stale.

    The default model's backend is chosen when it is trained; a newer detente that exports
    graphs differently (``GRAPH_FORMAT``) invalidates that choice. Redoing it takes about
    half a minute on the bundled real statements' validation split, once.
    """
    from training.bundled_data import selection_data_file

    corpus = selection_data_file()
    if not corpus.is_file():
        return None
    print("Choosing the fastest scoring backend for the default model on the validation "
          "split (once, about half a minute) ...", file=sys.stderr)
    try:
        selection = select_backend_on_file(folder, corpus)
    except Exception as err:  # an optimisation: ONNX fp32 gives torch's labels without it
        log.warning("backend selection failed (%s); --backend auto runs ONNX fp32", err)
        return None
    print(describe_selection(selection), file=sys.stderr)
    return selection


def load_backend(
    model: str | Path | None = None, backend: str = "auto", *, threads: int | None = None
) -> Backend:
    """A ready backend for the model folder; ``threads`` caps intra-op threads (Ray actors)."""
    resolved = resolve_backend(model, backend)
    if resolved.name == "torch":
        return _torch_backend(resolved.folder, threads, resolved.version)
    return open_onnx_backend(resolved, threads)


def _torch_backend(folder: Path, threads: int | None, version: str | None = None) -> TorchBackend:
    """The torch model; ``threads`` set after loading, which would otherwise use every core."""
    import torch

    from model.classifier import Classifier

    classifier = Classifier.load(folder)
    if threads:
        torch.set_num_threads(threads)
    return TorchBackend(classifier, version)


def open_onnx_backend(resolved: ResolvedBackend, threads: int | None):
    """An ONNX Runtime session on the cached graph: config and tokenizer, no torch weights."""
    from transformers import AutoTokenizer

    from serve import onnx_backend as ox

    config = DetenteConfig.from_pretrained(resolved.folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(
        resolved.folder, local_files_only=True, config=config.encoder_config()
    )
    session = ox.make_session(resolved.graph, threads)
    return ox.OnnxBackend(session, tokenizer, config, resolved.version, resolved.name)


# ----------------------------------------------------------------------------- selection

MIN_AGREEMENT = 0.99  # stance labels equal to torch fp32's on at least 99 % of statements
MAX_F1_DROP = 0.005  # and at most 0.5 stance macro-F1 points lost (validation split)
RULE = ">= 99% stance-label agreement with torch fp32 and <= 0.5 stance macro-F1 points lost"
# The rule must hold on statements the choice never saw (the test split), but it is checked
# on the validation split, where ~550 statements measure agreement to about +-0.4 points
# (one standard error near 99 %) and each label is 0.2 points. Picking the first of several
# int8 candidates to scrape past 99 % there picks the luckiest: on the default model,
# one MatMul in fp32 had 99.28 % on validation and 98.64 % on test. So the choice asks for
# this much more agreement on the selection data (99.5 %); there, three MatMuls in fp32
# had 99.64 % on validation and 99.40 % (-0.30 F1 points) on test.
SELECTION_MARGIN = 0.005
# Int8 candidates tried in order: per-channel int8 with the k encoder MatMuls that int8
# hurts most left in fp32 (ranked by simulated error weighted by the layers after them,
# the top of that ranking then measured one node at a time; see _measure_shortlist). The first
# that qualifies ends the ladder: every further step keeps more of the graph in fp32, so
# it is expected to be slower. Small steps first: on the default model each MatMul kept in
# fp32 cost about 3-5 % of int8's speed, and 3 were enough.
SELECTION_LADDER = (0, 1, 2, 3, 4, 6, 9, 12)
SELECTION_MAX_ROWS = 1000  # a larger validation set is sampled down (seeded): cost bound
RANKING_ROWS = 64  # statements whose activations rank the MatMuls
# The simulated ranking's top nodes are then measured: each quantized alone, on this many
# statements. On the default model the simulation put layer 0's FFN output product 5th;
# measured, it was 1st, and the measured top 3 in fp32 kept more validation labels than
# the simulated top 6 (99.64 % against 99.46 % agreement), at more speed.
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


def macro_f1(probs: np.ndarray, gold: Sequence[str | None], labels: Sequence[str]) -> float | None:
    """Macro-F1 of the argmax labels over the rows with a gold label (None: no such row)."""
    from sklearn.metrics import f1_score

    labels = list(labels)
    keep = [i for i, g in enumerate(gold) if g in labels]
    if not keep:
        return None
    predicted = [labels[int(probs[i].argmax())] for i in keep]
    return float(f1_score([gold[i] for i in keep], predicted, labels=labels, average="macro",
                          zero_division=0))


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
    stance_f1 = macro_f1(stance, stance_gold, config.stance_labels)
    sentiment_f1 = macro_f1(sentiment, sentiment_gold, config.sentiment_labels)
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
    from model.classifier import Classifier
    from model.persistence import check_model_folder, weights_hash
    from serve import onnx_backend as ox

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

    classifier = Classifier.load(folder)
    config, tokenizer = classifier.config, classifier.tokenizer
    (stance, sentiment), torch_rate = _timed(
        lambda: classifier.predict_proba(texts, batch_size), n)
    ref = _Reference(stance, sentiment, macro_f1(stance, stance_gold, config.stance_labels),
                     macro_f1(sentiment, sentiment_gold, config.sentiment_labels))
    args = (ref, stance_gold, sentiment_gold, config)
    candidates = [_candidate("torch", "torch", None, (stance, sentiment), torch_rate, *args)]
    classifier = None  # free the torch weights before the ONNX sessions load
    ranking: list[tuple[str, float]] = []
    backends: dict[str, object] = {}
    notes: list[str] = []
    try:
        fp32 = ox.ensure_fp32(folder, version)
        onnx = ox.OnnxBackend(ox.make_session(fp32), tokenizer, config, version, "onnx")
        probs, rate = _timed(lambda: onnx.predict_proba(texts, batch_size), n)
        candidates.append(_candidate("onnx", "onnx", None, probs, rate, *args))
        backends["onnx"] = onnx
    except ox.OnnxError as err:
        fp32 = None
        notes.append(f"{err}; --backend auto will use torch for this model")
    built: dict[str, tuple[Path, ox.Int8Config]] = {}
    work = Path(tempfile.mkdtemp(prefix=".select-", dir=fp32.parent)) if fp32 else None
    try:
        if fp32 is not None:
            ranking = ox.rank_by_quantization_error(
                fp32, tokenizer, texts[:RANKING_ROWS], batch_size=batch_size,
                max_length=config.max_seq_length, seed=seed)
            ranking = _measure_shortlist(ranking, fp32, tokenizer, config, texts, work,
                                         batch_size)
            for k in ladder:
                int8 = ox.Int8Config(True, tuple(name for name, _ in ranking[:k]))
                variant = "onnx-int8/per-channel" + (f"-fp32-top{k}" if k else "")
                path = work / f"{int8.tag()}.onnx"
                ox.quantize_int8(fp32, path, int8)
                backend = ox.OnnxBackend(ox.make_session(path), tokenizer, config, version,
                                         "onnx-int8")
                probs, rate = _timed(lambda b=backend: b.predict_proba(texts, batch_size), n)
                row = _candidate(variant, "onnx-int8", int8.to_dict(), probs, rate, *args)
                candidates.append(row)
                built[variant] = (path, int8)
                if row["qualifies"]:
                    backends[variant] = backend  # kept for the second timing
                    break
            _retime(candidates, backends, texts, batch_size)
    except ox.OnnxError as err:
        notes.append(f"int8 candidates skipped: {err}")
    chosen = choose_fastest(candidates, SELECTION_MARGIN)
    try:
        if chosen.get("variant") in built:
            path, int8 = built[chosen["variant"]]
            ox.store_int8(folder, version, int8, path)
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
        selection["file"] = str(ox.write_selection(folder, version, selection))
    return selection


def _measure_shortlist(
    ranking: list[tuple[str, float]], fp32: Path, tokenizer, config: DetenteConfig,
    texts: list[str], work: Path, batch_size: int,
) -> list[tuple[str, float]]:
    """Reorder the simulated ranking's top nodes by their measured effect on the labels."""
    from serve import onnx_backend as ox

    shortlist = [name for name, _ in ranking[:SENSITIVITY_SHORTLIST]]
    measured = ox.rank_sensitive_nodes(
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
    from training.data import load_labelled

    frame = load_labelled(data)
    if "split" not in frame.columns or not (frame["split"] == "validation").any():
        raise ValueError(
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
