"""Statements/s and label agreement of every scoring backend, side by side; picks ``auto``.

In one process, on the same statements (the test split of ``--data``), it measures:

- ``torch-unsorted``: batches of 32 in input order padded to their longest row, the way
  a plain loop (or the HF pipeline with ``batch_size=32``) runs; the baseline;
- ``torch``: ``Classifier.predict_proba`` (length-sorted batches, dynamic padding);
- ``onnx``: ONNX Runtime fp32;
- ``onnx-int8/...``: dynamic int8, per-tensor, per-channel, and per-channel with the k
  encoder MatMuls whose quantization moves the stance probabilities most left in fp32
  (ranked on ``--sensitivity`` statements, one node quantized at a time).
- ``auto = ...``: what ``--backend auto`` runs, as chosen on the validation split; its
  row is the out-of-sample check of that choice on the test split.

Every variant but the baseline runs behind ``model.classifier.Classifier``, as
``detente score`` and ``select_backend`` run it: a statement longer than the model's
window is read in sentence windows (the baseline truncates it; the test split's
statements almost all fit one window).

For each: statements/s (median of ``--rounds`` interleaved rounds, so load from other
processes hits every backend alike), stance and sentiment label agreement with torch
fp32, the largest probability difference, stance macro-F1 on the gold labels and its
drop against torch fp32, and single-statement latency (p50/p95). It reports which
variants would meet the rule of ``training.backend_selection.choose_fastest`` (>= 99 %
stance agreement, <= 0.5 macro-F1 points lost) on these statements, but it never writes
the ``auto`` choice: that is made on the validation split by
``training.backend_selection.select_backend`` (run by ``detente train``), since tuning on
the test split would overstate the result. Macro-F1 is ``training.metrics.macro_f1``, the
definition the selection and the model card use.

Results: ``benchmarks/results/scoring_speed.json`` and ``.md``. The full run, on the
final default model, quietly (nothing else running):

    .venv/bin/python benchmarks/scoring_speed.py --limit 0 --rounds 3

A quick check: ``--limit 200 --rounds 2 --sensitivity 32``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

Predict = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder (default: the default model)")
    parser.add_argument("--data", type=Path, default=None,
                        help="labelled file; its test split is used when it has one "
                        "(default: the bundled corpus data/statements.jsonl)")
    parser.add_argument("--limit", type=int, default=1000,
                        help="at most this many statements (0: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sensitivity", type=int, default=64,
                        help="statements for ranking nodes by int8 sensitivity (0: skip)")
    parser.add_argument("--skip-top", default="2,6",
                        help="comma-separated k: variants leaving the k most sensitive "
                        "encoder MatMuls in fp32")
    parser.add_argument("--latency", type=int, default=50,
                        help="single statements timed one by one for p50/p95 (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--note", default="",
                        help="a sentence for the results (what else ran, why this size)")
    parser.add_argument("--no-select", action="store_true",
                        help="accepted for old command lines; this benchmark never writes "
                        "selection.json (training.backend_selection.select_backend does, on "
                        "validation)")
    return parser.parse_args(argv)


def load_statements(path: Path, limit: int) -> tuple[list[str], list[str | None], str]:
    """Texts and gold stance labels: the test split when the file has one."""
    from training.data import load_labelled

    frame = load_labelled(path)
    source = "all rows"
    if "split" in frame.columns and (frame["split"] == "test").any():
        frame, source = frame[frame["split"] == "test"], "test split"
    frame = frame[frame["text"].map(lambda t: isinstance(t, str) and bool(t.strip()))]
    if limit and len(frame) > limit:
        frame, source = frame.sample(n=limit, random_state=0), f"{source}, {limit} sampled"
    return frame["text"].tolist(), frame["stance"].tolist(), source


def unsorted_predict(classifier, batch_size: int) -> Predict:
    """Batches in input order, each padded to its longest row: the baseline."""
    import torch

    from model.probabilities import softmax

    def run(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        stance, sentiment = [], []
        config = classifier.config
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = classifier.tokenizer(
                    texts[start : start + batch_size], padding=True, truncation=True,
                    max_length=config.max_seq_length, return_tensors="pt",
                )
                out = classifier.model(**batch)
                stance.append(out.stance_logits.numpy())
                sentiment.append(out.sentiment_logits.numpy())
        return (softmax(np.concatenate(stance) / config.stance_temperature),
                softmax(np.concatenate(sentiment) / config.sentiment_temperature))

    return run


def padding_share(tokenizer, texts: list[str], batch_size: int, max_length: int) -> dict:
    """Share of token slots that are padding, unsorted vs length-sorted batches."""
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True,
                                             max_length=max_length)["input_ids"]]

    def share(order: list[int]) -> float:
        slots = real = 0
        for start in range(0, len(order), batch_size):
            batch = [lengths[i] for i in order[start : start + batch_size]]
            slots += max(batch) * len(batch)
            real += sum(batch)
        return 1 - real / slots

    return {
        "mean_tokens": float(np.mean(lengths)),
        "unsorted": share(list(range(len(lengths)))),
        "sorted": share(sorted(range(len(lengths)), key=lengths.__getitem__)),
    }


def build_variants(args, model_dir: Path, texts: list[str]) -> tuple[dict, dict, list]:
    """name -> (predict, backend name, int8 config or None), plus the sensitivity ranking."""
    from model.backends import cache, open_resolved, resolve_backend
    from model.backends.onnx_runtime import open_session
    from model.backends.quantize import Int8Config, rank_sensitive_nodes
    from model.classifier import Classifier

    classifier = Classifier.load(model_dir)
    version = classifier.model_version
    batch = args.batch_size

    def scoring(backend) -> Predict:
        # What `detente score` and select_backend run: the backend behind a Classifier.
        wrapped = Classifier(backend, path=model_dir)
        return lambda t: wrapped.predict_proba(t, batch)

    variants: dict[str, tuple[Predict, str, dict | None]] = {
        "torch-unsorted": (unsorted_predict(classifier, batch), "torch-unsorted", None),
        "torch": (lambda t: classifier.predict_proba(t, batch), "torch", None),
    }
    onnx = open_resolved(resolve_backend(model_dir, "onnx"))
    variants["onnx"] = (scoring(onnx), "onnx", None)
    configs = {"onnx-int8/per-tensor": Int8Config(per_channel=False),
               "onnx-int8/per-channel": Int8Config(per_channel=True)}
    ranking: list[tuple[str, float]] = []
    if args.sensitivity:
        fp32 = cache.ensure_fp32(model_dir, version)
        with tempfile.TemporaryDirectory() as work:
            ranking = rank_sensitive_nodes(fp32, onnx.tokenizer, onnx.config,
                                           texts[: args.sensitivity], Path(work) / "probe")
        for k in (int(k) for k in args.skip_top.split(",") if k.strip()):
            keep = tuple(name for name, _ in ranking[:k])
            configs[f"onnx-int8/per-channel-fp32-top{k}"] = Int8Config(True, keep)
    for name, config in configs.items():
        path = cache.ensure_int8(model_dir, version, config)
        backend = open_session(path, onnx.tokenizer, onnx.config, version, "onnx-int8")
        variants[name] = (scoring(backend), "onnx-int8", config.to_dict())
    auto = resolve_backend(model_dir, "auto")  # the choice made on the validation split
    if auto.name != "torch":
        chosen = open_resolved(auto)
        label = (cache.read_selection(model_dir, version) or {}).get("variant", auto.name)
        variants[f"auto = {label}"] = (scoring(chosen), auto.name,
                                       auto.int8.to_dict() if auto.name == "onnx-int8" else None)
    return variants, {"model_version": version, "classifier": classifier}, ranking


def macro_f1(probs: np.ndarray, gold: list[str | None], labels: list[str]) -> float | None:
    """Stance macro-F1 of the argmax labels, as ``select_backend`` computes it."""
    from training.backend_selection import argmax_macro_f1

    return argmax_macro_f1(probs, gold, labels)


def measure(variants: dict, texts: list[str], rounds: int) -> dict[str, dict]:
    """Interleaved timed rounds; the last round's outputs are kept for agreement."""
    warm = texts[:64]
    for predict, _, _ in variants.values():
        predict(warm)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for _ in range(rounds):
        for name, (predict, _, _) in variants.items():
            started = time.perf_counter()
            outputs[name] = predict(texts)
            rates[name].append(len(texts) / (time.perf_counter() - started))
    return {name: {"rates": rates[name], "outputs": outputs[name]} for name in variants}


def latency(predict: Predict, texts: list[str]) -> dict:
    times = []
    for text in texts:
        started = time.perf_counter()
        predict([text])
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def summarise(args, variants, measured, texts, gold, labels, sentiment_labels) -> list[dict]:
    ref_stance, ref_sentiment = measured["torch"]["outputs"]
    ref_f1 = macro_f1(ref_stance, gold, labels)
    base = statistics.median(measured["torch-unsorted"]["rates"])
    rows = []
    for name, (predict, backend, int8) in variants.items():
        stance, sentiment = measured[name]["outputs"]
        f1 = macro_f1(stance, gold, labels)
        rate = statistics.median(measured[name]["rates"])
        row = {
            "variant": name, "backend": backend, "int8": int8,
            "statements_per_s": rate, "best_statements_per_s": max(measured[name]["rates"]),
            "speedup_vs_unsorted": rate / base,
            "stance_agreement": float((stance.argmax(1) == ref_stance.argmax(1)).mean()),
            "sentiment_agreement": float(
                (sentiment.argmax(1) == ref_sentiment.argmax(1)).mean()),
            "max_abs_prob_diff": float(max(np.abs(stance - ref_stance).max(),
                                           np.abs(sentiment - ref_sentiment).max())),
            "stance_macro_f1": f1,
            "macro_f1_drop": None if f1 is None or ref_f1 is None else ref_f1 - f1,
        }
        if args.latency and name != "torch-unsorted":
            row.update(latency(predict, texts[: args.latency]))
        rows.append(row)
    return rows


def _points(drop: float) -> str:
    """F1 change against torch fp32 in points, + for better, 0.00 without a sign."""
    change = -100 * drop
    return "0.00" if abs(change) < 0.005 else f"{change:+.2f}"


def to_markdown(report: dict) -> str:
    lines = [
        "# Scoring speed by backend",
        "",
        f"Model `{report['model']}` (weights {report['model_version']}), "
        f"{report['statements']} statements ({report['data_source']} of `{report['data']}`), "
        f"mean {report['padding']['mean_tokens']:.1f} tokens; {report['machine']['cpus']} "
        f"CPUs, load average {report['machine']['load_before']} before and "
        f"{report['machine']['load_after']} after. Padding: "
        f"{report['padding']['unsorted']:.0%} of token slots unsorted, "
        f"{report['padding']['sorted']:.0%} length-sorted.",
        "",
        "| variant | statements/s (median) | vs unsorted | stance agreement | "
        "sentiment agreement | max abs dp | stance macro-F1 | F1 vs torch (points) | p50 ms | "
        "p95 ms | qualifies |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        f1 = "n/a" if row["stance_macro_f1"] is None else f"{row['stance_macro_f1']:.3f}"
        drop = "n/a" if row["macro_f1_drop"] is None else _points(row["macro_f1_drop"])
        lines.append(
            f"| {row['variant']} | {row['statements_per_s']:.0f} | "
            f"{row['speedup_vs_unsorted']:.2f}x | {row['stance_agreement']:.2%} | "
            f"{row['sentiment_agreement']:.2%} | {row['max_abs_prob_diff']:.1e} | {f1} | {drop} | "
            f"{row.get('p50_ms', float('nan')):.1f} | {row.get('p95_ms', float('nan')):.1f} | "
            f"{'yes' if row.get('qualifies') else 'no'} |"
        )
    chosen = report["selection"]
    lines += ["", f"Fastest variant meeting the rule on these statements: "
              f"**{chosen['variant']}** ({chosen['backend']}); rule: {report['rule']}. "
              "`--backend auto` follows the choice made on the validation split by "
              "`training.backend_selection.select_backend` (run by `detente train`), not "
              "this table."]
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from model.paths import bundled_corpus
    from serve.loading import model_folder
    from training.backend_selection import choose_fastest, is_acceptable

    load_before = [round(x, 2) for x in os.getloadavg()]
    model_dir = model_folder(args.model).resolve()
    data = args.data or bundled_corpus()
    texts, gold, source = load_statements(data, args.limit)
    variants, info, ranking = build_variants(args, model_dir, texts)
    classifier = info["classifier"]
    measured = measure(variants, texts, args.rounds)
    results = summarise(args, variants, measured, texts, gold, classifier.stance_labels,
                        classifier.sentiment_labels)
    candidates = [r for r in results if r["variant"] != "torch-unsorted"]
    for row in candidates:
        row["qualifies"] = is_acceptable(row)
    chosen = choose_fastest(candidates)
    import onnxruntime
    import torch

    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": str(model_dir), "model_version": info["model_version"],
        "data": str(data), "data_source": source, "statements": len(texts),
        "rounds": args.rounds, "batch_size": args.batch_size,
        "padding": padding_share(classifier.tokenizer, texts, args.batch_size,
                                 classifier.config.max_seq_length),
        "machine": {
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "rule": ">= 99% stance agreement with torch fp32 and <= 0.5 macro-F1 points lost",
        "note": args.note,
        "sensitivity_ranking": ranking[:10],
        "results": results,
        "selection": {k: chosen.get(k) for k in ("variant", "backend", "int8",
                                                 "statements_per_s")},
    }
    if not any(g for g in gold):
        report["note"] = (args.note + " " if args.note else "") + (
            "No gold labels: int8 variants cannot qualify (F1 unchecked).")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scoring_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "scoring_speed.md").write_text(to_markdown(report))
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
