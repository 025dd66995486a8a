"""Statements/s, peak memory and latency of ``detente score`` against the HF pipeline.

One run, one model, the same statements (the bundled corpus's texts, cycled up to
``--rows``, default 5,000; mean about 32 tokens), each variant in its own child process so
that its peak RSS (``VmHWM`` of that process, see ``peak_rss_mb``) is its own:

- ``pipeline-b1``: ``transformers.pipeline("text-classification")`` called once per
  statement, as most users do; ``pipeline-b32``: the same pipeline given the list with
  ``batch_size=32``. Its model is a ``BertForSequenceClassification`` with 3 labels built
  from the detente model's own encoder weights and stance head (its pooler, which detente
  does not have, stays at its initialisation: it costs one hidden x hidden product per
  statement), saved and loaded by the pipeline the usual way. It runs one head;
  detente runs both in the same pass.
- ``score-<backend>``: ``serve.scoring.score_file`` on a CSV of the statements (read,
  score, write, in input order) with each backend: torch, onnx (fp32), onnx-int8 with
  plain per-channel quantization, onnx-int8 with the settings chosen for this model on its
  validation split (when that choice is int8 and differs), and auto.
- ``--onnx-sweep``: ONNX fp32 side by side with batch sizes 16 and 64 and with the ONNX
  Runtime thread pool spinning between runs (``score-onnx-spin``; detente's sessions block
  instead, see ``model.backends.onnx_runtime.make_session``), to show what those settings are worth.

Statements/s excludes loading the model (reported separately, ``load_s``) and includes a
warm-up of 64 statements before the clock starts, for every variant alike. Single-statement
latency (p50/p95): each of ``--latency`` statements alone through ``score_texts`` (error
check, window planning, tokenization, one forward pass), or one pipeline call.

The FLOP bound: fp32 matmul GFLOP/s measured with torch (large square matmuls on every
core, best of several; also through ONNX Runtime, whose MLAS kernels can beat the MKL of
torch's CPU wheel on non-Intel CPUs: the faster of the two is the bound), and the
encoder's FLOPs per statement counted from the actual token lengths: ``2 * (weights in
the encoder's matmuls) * tokens`` plus the attention products ``4 * tokens^2 * hidden`` per
layer (padding, embeddings, softmax, LayerNorm and the heads are not counted: this is
useful work). Each variant's fraction of the bound is
``statements/s * FLOPs per statement / matmul FLOP/s`` (int8 variants can pass 100 %:
their bound is int8's, not fp32's).

Goals (issue 5): the default backend (auto) at least 6x ``pipeline-b1`` and 4.5x
``pipeline-b32``; the fp32 backend (ONNX fp32) at least 85 % of the fp32 FLOP bound;
single-statement p50 at most 10 ms (auto).

    .venv/bin/python benchmarks/score_throughput.py              # full: 5,000 statements
    .venv/bin/python benchmarks/score_throughput.py --quick      # a few hundred, minutes

Results: ``benchmarks/results/score_throughput.json`` and ``.md``. Run the full version on
a quiet machine: every number here is wall-clock time on shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOALS = {"vs_pipeline_b1": 6.0, "vs_pipeline_b32": 4.5, "fp32_flop_fraction": 0.85,
         "p50_ms": 10.0}
WARMUP = 64


# ----------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="detente model folder (default: the default model)")
    parser.add_argument("--rows", type=int, default=None,
                        help="statements (corpus texts, cycled); default 5000, --quick 300")
    parser.add_argument("--quick", action="store_true",
                        help="a short check: 300 statements, 30 latency samples, a smaller "
                        "matmul; not the numbers to commit")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every variant this many times, alternating, and keep each "
                        "one's best round (use 2-3 when other processes share the CPU)")
    parser.add_argument("--latency", type=int, default=None,
                        help="single statements timed one by one (default 200, --quick 30)")
    parser.add_argument("--matmul-size", type=int, default=None,
                        help="side of the square matmuls for the FLOP bound "
                        "(default 4096, --quick 2048)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated subset of the variants to run")
    parser.add_argument("--onnx-sweep", action="store_true",
                        help="also ONNX fp32 with batch sizes 16 and 64 and with spinning")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--note", default="",
                        help="a sentence for the results: what else ran on the machine")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rows = args.rows or (300 if args.quick else 5000)
    args.latency = args.latency if args.latency is not None else (30 if args.quick else 200)
    args.matmul_size = args.matmul_size or (2048 if args.quick else 4096)
    return args


# ----------------------------------------------------------------------------- data


def corpus_texts(rows: int) -> list[str]:
    """The bundled corpus's statements in file order, cycled up to ``rows``."""
    from model.paths import bundled_corpus

    texts = []
    with bundled_corpus().open(encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line).get("text")
            if isinstance(text, str) and text.strip():
                texts.append(text)
    return [texts[i % len(texts)] for i in range(rows)]


def encoder_flops(model_dir: Path, texts: list[str]) -> dict:
    """FLOPs per statement of the encoder, from its weights and the real token lengths.

    Counted per window of text the model reads (a text over ``max_seq_length`` tokens is
    several windows in ``detente score``; none of the corpus's is).
    """
    import numpy as np
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from model.config import DetenteConfig
    from model.long_text import plan_windows

    config = DetenteConfig.from_pretrained(model_dir, local_files_only=True)
    encoder = config.encoder_config()
    matmul_weights = 0
    with safe_open(str(model_dir / "model.safetensors"), "pt") as weights:
        for key in weights.keys():
            shape = weights.get_slice(key).get_shape()
            if ".layer." in key and key.endswith(".weight") and len(shape) == 2:
                matmul_weights += shape[0] * shape[1]
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True,
                                              config=encoder)
    plan = plan_windows(texts, tokenizer, config.max_seq_length)
    lengths = np.array([len(ids) for ids in tokenizer(
        plan.windows, truncation=True, max_length=config.max_seq_length)["input_ids"]])
    hidden, layers = encoder.hidden_size, encoder.num_hidden_layers
    per_window = 2 * matmul_weights * lengths + 4 * layers * hidden * lengths.astype(float) ** 2
    return {
        "encoder_matmul_weights": int(matmul_weights),
        "layers": layers, "hidden": hidden,
        "intermediate": getattr(encoder, "intermediate_size", None),
        "windows": len(plan.windows), "statements": len(texts),
        "mean_tokens": float(lengths.mean()), "max_tokens": int(lengths.max()),
        "flops_per_statement": float(per_window.sum() / len(texts)),
        "attention_share": float((4 * layers * hidden * lengths.astype(float) ** 2).sum()
                                 / per_window.sum()),
    }


# ----------------------------------------------------------------------------- children


def child_matmul(args) -> dict:
    """Best fp32 matmul GFLOP/s with torch on every core: the bound; also encoder shapes."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    n = args.matmul_size
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    square = []
    for _ in range(3 if args.quick else 6):
        started = time.perf_counter()
        torch.mm(a, b)
        square.append(2 * n**3 / (time.perf_counter() - started) / 1e9)
    # The encoder's biggest product at batch 32 x 32 tokens: (1024 x 384) @ (384 x 1536).
    x, w = torch.randn(1024, 384), torch.randn(384, 1536)
    torch.mm(x, w)
    shaped = []
    for _ in range(20 if args.quick else 50):
        started = time.perf_counter()
        torch.mm(x, w)
        shaped.append(2 * 1024 * 384 * 1536 / (time.perf_counter() - started) / 1e9)
    ort = ort_matmul_gflops(n, 3 if args.quick else 6)
    return {"size": n, "threads": torch.get_num_threads(),
            "torch_gflops_best": max(square), "torch_gflops_median": statistics.median(square),
            "ort_gflops_best": max(ort), "ort_gflops_median": statistics.median(ort),
            "gflops_best": max(max(square), max(ort)),
            "encoder_shape_gflops_best": max(shaped),
            "encoder_shape_gflops_median": statistics.median(shaped)}


def ort_matmul_gflops(n: int, reps: int) -> list[float]:
    """The same square fp32 matmul through ONNX Runtime (MLAS), on every core.

    torch's CPU wheel multiplies with MKL, which may not use every vector unit of a
    non-Intel CPU; taking the faster of the two keeps the bound a bound.
    """
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {x: rng.standard_normal((n, n), dtype=np.float32) for x in "ab"}
    session.run(None, feed)
    rates = []
    for _ in range(reps):
        started = time.perf_counter()
        session.run(None, feed)
        rates.append(2 * n**3 / (time.perf_counter() - started) / 1e9)
    return rates


def child_pipeline(args, batched: bool) -> dict:
    import torch
    from transformers import pipeline

    torch.set_num_threads(os.cpu_count() or 1)
    texts = read_texts(args.work)
    started = time.perf_counter()
    pipe = pipeline("text-classification", model=str(args.work / "hf-model"), device="cpu")
    load = time.perf_counter() - started
    options = {"truncation": True, "max_length": 128}
    if batched:
        pipe(texts[:WARMUP], batch_size=args.batch_size, **options)
        started = time.perf_counter()
        out = pipe(texts, batch_size=args.batch_size, **options)
        seconds = time.perf_counter() - started
        latencies = []
    else:
        for text in texts[:WARMUP]:
            pipe(text, **options)
        out, latencies = [], []
        started = time.perf_counter()
        for text in texts:
            t0 = time.perf_counter()
            out.append(pipe(text, **options))
            latencies.append(1000 * (time.perf_counter() - t0))
        seconds = time.perf_counter() - started
        latencies = latencies[: args.latency]
    assert len(out) == len(texts)
    return {"load_s": load, "seconds": seconds, "rows": len(texts),
            **percentiles(latencies)}


def child_score(args, spec: dict) -> dict:
    from model.backends import cache, open_resolved, resolve_backend
    from model.backends.quantize import Int8Config
    from model.classifier import Classifier
    from serve.scoring import score_file, score_texts

    texts = read_texts(args.work)
    model = args.model
    started = time.perf_counter()
    if spec.get("int8") is not None:  # these int8 settings, whatever auto would pick
        resolved = resolve_backend(model, "onnx")
        graph = cache.ensure_int8(resolved.folder, resolved.version,
                                  Int8Config.from_dict(spec["int8"]))
        backend = open_resolved(replace(resolved, name="onnx-int8", graph=graph))
        classifier = Classifier(backend, path=resolved.folder)
    elif spec.get("spin"):  # make_session's switch (this child only)
        os.environ["DETENTE_ORT_SPIN"] = "1"
        classifier = Classifier.load(model, backend="onnx")
    else:
        classifier = Classifier.load(model, backend=spec["backend"])
    load = time.perf_counter() - started
    batch = spec.get("batch_size", args.batch_size)
    score_texts(texts[:WARMUP], classifier, batch_size=batch)
    result = score_file(args.work / "statements.csv", args.work / f"{spec['name']}.csv",
                        backend=classifier, batch_size=batch, progress=False)
    if result.rows != len(texts) or result.errors:
        raise RuntimeError(f"{spec['name']}: {result.rows} rows, {result.errors} errors")
    latencies = []
    for text in texts[: args.latency]:
        t0 = time.perf_counter()
        score_texts([text], classifier, batch_size=1)
        latencies.append(1000 * (time.perf_counter() - t0))
    return {"load_s": load, "seconds": result.seconds, "rows": result.rows,
            "backend": classifier.backend_name, **percentiles(latencies)}


def percentiles(latencies: list[float]) -> dict:
    import numpy as np

    if not latencies:
        return {}
    return {"p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95)), "latency_samples": len(latencies)}


def read_texts(work: Path) -> list[str]:
    return json.loads((work / "texts.json").read_text(encoding="utf-8"))


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started running this program.

    ``VmHWM`` is the high-water mark of the current address space, which ``exec`` replaced:
    ``ru_maxrss`` (``getrusage``, ``wait4``) would also count the parent's memory at fork,
    since Linux carries the pre-exec high-water mark over, so every child would show the
    parent's size whenever that is larger.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args) -> None:
    spec = json.loads((args.work / "variants.json").read_text())[args.child]
    if spec["kind"] == "matmul":
        out = child_matmul(args)
    elif spec["kind"] == "pipeline":
        out = child_pipeline(args, batched=spec["batched"])
    else:
        out = child_score(args, spec)
    out["peak_rss_mb"] = peak_rss_mb()
    (args.work / f"{args.child}.json").write_text(json.dumps(out))


# ----------------------------------------------------------------------------- parent


def build_pipeline_model(model_dir: Path, target: Path) -> None:
    """A BertForSequenceClassification (3 labels) holding the detente model's encoder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from model.persistence import load_model

    detente, _ = load_model(model_dir)
    config = detente.config.encoder_config()
    config.num_labels = len(detente.config.stance_labels)
    config.id2label = dict(enumerate(detente.config.stance_labels))
    config.label2id = {v: k for k, v in config.id2label.items()}
    hf = AutoModelForSequenceClassification.from_config(config)
    missing, unexpected = hf.base_model.load_state_dict(detente.encoder.state_dict(),
                                                        strict=False)
    if unexpected or [k for k in missing if not k.startswith("pooler.")]:
        raise RuntimeError(f"encoder weights do not fit: {missing[:3]} {unexpected[:3]}")
    hf.classifier.load_state_dict(detente.stance_head.state_dict())
    hf.save_pretrained(target)
    AutoTokenizer.from_pretrained(model_dir, local_files_only=True,
                                  config=detente.config.encoder_config()).save_pretrained(target)


def plan_variants(args, model_dir: Path) -> dict[str, dict]:
    from model.backends import cache
    from model.backends.quantize import Int8Config
    from model.persistence import weights_hash

    variants = {
        "matmul": {"kind": "matmul"},
        "pipeline-b1": {"kind": "pipeline", "batched": False},
        "pipeline-b32": {"kind": "pipeline", "batched": True},
        "score-torch": {"kind": "score", "backend": "torch"},
        "score-onnx": {"kind": "score", "backend": "onnx"},
        "score-onnx-int8-pc": {"kind": "score", "backend": "onnx-int8",
                               "int8": Int8Config(True).to_dict()},
    }
    selection = cache.read_selection(model_dir, weights_hash(model_dir)) or {}
    chosen = selection.get("int8")
    if selection.get("backend") == "onnx-int8" and chosen and chosen != variants[
            "score-onnx-int8-pc"]["int8"]:
        variants["score-onnx-int8-selected"] = {"kind": "score", "backend": "onnx-int8",
                                                "int8": chosen}
    variants["score-auto"] = {"kind": "score", "backend": "auto"}
    if args.onnx_sweep:
        for size in (16, 64):
            variants[f"score-onnx-b{size}"] = {"kind": "score", "backend": "onnx",
                                               "batch_size": size}
        variants["score-onnx-spin"] = {"kind": "score", "backend": "onnx", "spin": True}
    if args.variants:
        keep = {v.strip() for v in args.variants.split(",")} | {"matmul"}
        variants = {k: v for k, v in variants.items() if k in keep}
    for name, spec in variants.items():
        spec["name"] = name
    return variants


def run_variant(args, name: str) -> dict:
    """One child process, which reports its own peak RSS (``peak_rss_mb``)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name,
           "--work", str(args.work), "--batch-size", str(args.batch_size),
           "--latency", str(args.latency), "--matmul-size", str(args.matmul_size),
           "--rows", str(args.rows)]
    if args.model is not None:
        cmd += ["--model", str(args.model)]
    if args.quick:
        cmd.append("--quick")
    log = (args.work / f"{name}.log").open("w")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    proc.wait()
    log.close()
    if proc.returncode != 0:
        tail = (args.work / f"{name}.log").read_text()[-2000:]
        raise RuntimeError(f"variant {name} failed ({proc.returncode}):\n{tail}")
    out = json.loads((args.work / f"{name}.json").read_text())
    out["process_s"] = time.perf_counter() - started
    return out


def best_round(rounds: list[dict]) -> dict:
    """The least disturbed round (highest statements/s), with every round's rate kept."""
    rates = [r["rows"] / r["seconds"] for r in rounds]
    best = dict(rounds[rates.index(max(rates))])
    best["round_statements_per_s"] = rates
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rounds)
    return best


def best_matmul(runs: list[dict]) -> dict:
    """The highest GFLOP/s any matmul run reached: the bound (others only slowed it)."""
    best = dict(max(runs, key=lambda r: r["gflops_best"]))
    best["runs_gflops_best"] = [r["gflops_best"] for r in runs]
    for key in ("torch_gflops_best", "ort_gflops_best", "encoder_shape_gflops_best"):
        best[key] = max(r[key] for r in runs)
    return best


def summarise(results: dict, flops: dict, matmul: dict) -> None:
    bound = matmul["gflops_best"] * 1e9
    for row in results.values():
        row["statements_per_s"] = row["rows"] / row["seconds"]
        achieved = row["statements_per_s"] * flops["flops_per_statement"]
        row["achieved_gflops"] = achieved / 1e9
        row["flop_bound_fraction"] = achieved / bound
    base_a = results.get("pipeline-b1", {}).get("statements_per_s")
    base_b = results.get("pipeline-b32", {}).get("statements_per_s")
    for row in results.values():
        row["vs_pipeline_b1"] = row["statements_per_s"] / base_a if base_a else None
        row["vs_pipeline_b32"] = row["statements_per_s"] / base_b if base_b else None


def goals(results: dict) -> list[dict]:
    auto, fp32 = results.get("score-auto"), results.get("score-onnx")
    out = []

    def add(goal: str, value, target, ok) -> None:
        out.append({"goal": goal, "value": value, "target": target,
                    "met": None if value is None else bool(ok)})

    add("auto >= 6x pipeline called once per statement (a)",
        auto and auto.get("vs_pipeline_b1"), GOALS["vs_pipeline_b1"],
        auto and auto.get("vs_pipeline_b1") and auto["vs_pipeline_b1"] >= 6.0)
    add("auto >= 4.5x pipeline with batch_size=32 (b)",
        auto and auto.get("vs_pipeline_b32"), GOALS["vs_pipeline_b32"],
        auto and auto.get("vs_pipeline_b32") and auto["vs_pipeline_b32"] >= 4.5)
    add("ONNX fp32 >= 85% of the fp32 matmul FLOP bound",
        fp32 and fp32["flop_bound_fraction"], GOALS["fp32_flop_fraction"],
        fp32 and fp32["flop_bound_fraction"] >= 0.85)
    add("auto single-statement p50 <= 10 ms", auto and auto.get("p50_ms"), GOALS["p50_ms"],
        auto and auto.get("p50_ms") is not None and auto["p50_ms"] <= 10.0)
    return out


def to_markdown(report: dict) -> str:
    flops, matmul = report["flops"], report["matmul"]
    lines = [
        "# Scoring throughput: detente score vs the HF pipeline",
        "",
        f"{'**Quick check, not the final numbers.** ' if report['quick'] else ''}"
        f"Model `{report['model']}` (weights {report['model_version']}); "
        f"{report['rows']:,} statements (corpus texts cycled), mean {flops['mean_tokens']:.1f} "
        f"tokens, best of {report['rounds']} round(s) per variant; "
        f"{report['machine']['cpus']} CPUs ({report['machine']['cpu']}), load average "
        f"{report['machine']['load_before']} before, {report['machine']['load_after']} after.",
        "",
        f"FLOP bound: fp32 matmul {matmul['gflops_best']:.0f} GFLOP/s, the faster of torch "
        f"({matmul['torch_gflops_best']:.0f}) and ONNX Runtime "
        f"({matmul['ort_gflops_best']:.0f}) on {matmul['size']}x{matmul['size']} matrices with "
        f"{matmul['threads']} threads, best of {len(matmul['runs_gflops_best'])} runs "
        f"before, between and after the variants (torch on the encoder's "
        f"1024x384 @ 384x1536 product: {matmul['encoder_shape_gflops_best']:.0f} GFLOP/s); "
        f"encoder {flops['flops_per_statement'] / 1e6:.0f} MFLOP per statement "
        f"({flops['encoder_matmul_weights'] / 1e6:.1f} M matmul weights, attention "
        f"{flops['attention_share']:.1%}), so at most "
        f"{report['bound_statements_per_s']:.0f} statements/s.",
        "",
        "| variant | statements/s | vs (a) | vs (b) | of FLOP bound | peak RSS MB | "
        "load s | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def num(value, fmt):
        return "-" if value is None else format(value, fmt) + ("x" if fmt == ".2f" else "")

    for name, row in report["results"].items():
        label = {"pipeline-b1": "(a) pipeline, one call per statement",
                 "pipeline-b32": "(b) pipeline, batch_size=32"}.get(name, name)
        if name == "score-auto":
            label += f" = {row.get('backend')}"
        lines.append(
            f"| {label} | {row['statements_per_s']:.0f} | {num(row['vs_pipeline_b1'], '.2f')} "
            f"| {num(row['vs_pipeline_b32'], '.2f')} | {row['flop_bound_fraction']:.0%} | "
            f"{row['peak_rss_mb']:.0f} | {row['load_s']:.1f} | {num(row.get('p50_ms'), '.1f')} "
            f"| {num(row.get('p95_ms'), '.1f')} |")
    selection = report.get("auto_selection")
    if selection:
        evidence = selection.get("evidence") or {}
        drop = evidence.get("macro_f1_drop")
        lines += ["", f"`auto` = **{selection['variant']}**, chosen on "
                  f"{selection['data']['statements']} validation statements: "
                  f"{evidence.get('stance_agreement', float('nan')):.2%} stance agreement with "
                  f"torch fp32, stance macro-F1 "
                  f"{'n/a' if drop is None else f'{-100 * drop:+.2f}'} points."]
    else:
        lines += ["", "`auto` = ONNX fp32: no backend selection for these weights."]
    lines += ["", "| goal (issue 5) | measured | met |", "|---|---|---|"]
    for goal in report["goals"]:
        value = goal["value"]
        shown = "-" if value is None else (f"{value:.0%}" if "FLOP" in goal["goal"]
                                           else f"{value:.2f}")
        met = {True: "**yes**", False: "**no**", None: "not measured"}[goal["met"]]
        lines.append(f"| {goal['goal']} | {shown} | {met} |")
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines) + "\n"


def auto_selection(model_dir: Path) -> dict | None:
    """What ``--backend auto`` runs for this model and the validation numbers behind it."""
    from model.backends import cache
    from model.persistence import weights_hash

    selection = cache.read_selection(model_dir, weights_hash(model_dir))
    if not selection:
        return None
    return {key: selection.get(key) for key in ("backend", "variant", "int8", "evidence",
                                                "data", "measured")}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    from model.persistence import weights_hash
    from serve.loading import model_folder

    load_before = [round(x, 2) for x in os.getloadavg()]
    model_dir = model_folder(args.model).resolve()
    args.model = model_dir
    texts = corpus_texts(args.rows)
    with tempfile.TemporaryDirectory(prefix="score-throughput-") as work:
        args.work = Path(work)
        (args.work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        import pandas as pd

        pd.DataFrame({"text": texts}).to_csv(args.work / "statements.csv", index=False)
        variants = plan_variants(args, model_dir)
        (args.work / "variants.json").write_text(json.dumps(variants))
        if any(v["kind"] == "pipeline" for v in variants.values()):
            build_pipeline_model(model_dir, args.work / "hf-model")
        from model.backends import cache, resolve_backend
        from model.backends.quantize import Int8Config

        for backend in {v["backend"] for v in variants.values() if v["kind"] == "score"}:
            resolve_backend(model_dir, backend)  # export/quantize once, outside the clocks
        for spec in variants.values():
            if spec.get("int8") is not None:
                cache.ensure_int8(model_dir, weights_hash(model_dir),
                                  Int8Config.from_dict(spec["int8"]))
        flops = encoder_flops(model_dir, texts)
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for name in variants:  # the matmul first and last: it brackets the variants
                print(f"round {round_ + 1}/{args.rounds}: {name} ...", file=sys.stderr,
                      flush=True)
                runs[name].append(run_variant(args, name))
        runs["matmul"].append(run_variant(args, "matmul"))
    matmul = best_matmul(runs.pop("matmul"))
    results = {name: best_round(rounds) for name, rounds in runs.items()}
    summarise(results, flops, matmul)
    import onnxruntime
    import torch
    import transformers

    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick, "model": str(model_dir), "model_version": weights_hash(model_dir),
        "rows": args.rows, "rounds": args.rounds, "batch_size": args.batch_size,
        "latency_samples": args.latency,
        "machine": {
            "cpus": os.cpu_count(), "cpu": cpu_name(),
            "platform": platform.platform(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "transformers": transformers.__version__,
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "matmul": matmul, "flops": flops,
        "bound_statements_per_s": matmul["gflops_best"] * 1e9 / flops["flops_per_statement"],
        "results": results, "goals": goals(results), "note": args.note,
        "auto_selection": auto_selection(model_dir),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "score_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "score_throughput.md").write_text(to_markdown(report))
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
