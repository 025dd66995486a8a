"""Peak memory of ``detente score`` on a large CSV: it must stay flat whatever the rows.

Generates ``--rows`` (default 1,000,000) short synthetic statements (seeded), runs
``detente score`` on them in a child process and samples the child's RSS every second
(psutil), then records the peak RSS (also the kernel's ``ru_maxrss`` of the child), the
RSS over the run, the output's row count and ids, wall time and statements/s into
``benchmarks/results/score_memory.json`` and ``.md``.

The model is the tiny fast path by default (a 2-layer, 32-wide BERT on MiniLM's
tokenizer, built on the fly: what is measured is the pipeline's memory, not the
encoder's); ``--model`` scores with a real one. Goal (issue 5): peak RSS <= 1.5 GB on
1,000,000 rows, and exactly one output row per input row.

    .venv/bin/python benchmarks/score_memory.py --rows 1000000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
GOAL_MB = 1536

ACTORS = ["The foreign minister", "A government spokesperson", "The rebel command",
          "The UN envoy", "The defence ministry", "Opposition leaders", "The president",
          "Local officials", "The army", "Mediators from Qatar"]
ACTS = ["called for talks on", "accused the other side of violating", "reported shelling near",
        "welcomed the agreement on", "condemned the attack on", "said a delegation would visit",
        "denied any role in", "urged restraint around", "announced a ceasefire in",
        "blamed foreign fighters for"]
PLACES = ["the northern border", "the port district", "Geneva", "the capital", "Doha",
          "the occupied villages", "the river crossing", "the airport", "the eastern front"]


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Short statements, a realistic mix of lengths, with a few empty cells (bad rows)."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["doc_id", "text", "source"])
        for i in range(rows):
            if i % 10_007 == 0:
                text = ""
            else:
                text = (f"{rng.choice(ACTORS)} {rng.choice(ACTS)} {rng.choice(PLACES)} "
                        f"on day {rng.randint(1, 900)}.")
                if rng.random() < 0.3:
                    text += f" {rng.choice(ACTORS)} {rng.choice(ACTS)} {rng.choice(PLACES)}."
            writer.writerow([f"doc-{i}", text, rng.choice(["wire", "tv", "radio"])])


def tiny_model(folder: Path) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from model import DetenteModel, save_model
    from model.paths import default_base_model

    encoder = folder / "encoder"
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
    BertModel(config).save_pretrained(encoder)
    tokenizer = AutoTokenizer.from_pretrained(default_base_model(), local_files_only=True)
    tokenizer.save_pretrained(encoder)
    model = DetenteModel.from_base_encoder(encoder, max_seq_length=64)
    save_model(model, tokenizer, folder / "model")
    return folder / "model"


def run_scoring(cmd: list[str], interval: float = 1.0) -> tuple[int, float, list]:
    """Run ``cmd``; return (exit code, seconds, [(seconds, rss MB)]) sampled with psutil."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    samples = []
    while proc.poll() is None:
        try:
            rss = watched.memory_info().rss
            rss += sum(c.memory_info().rss for c in watched.children(recursive=True))
            samples.append((round(time.perf_counter() - started, 1), round(rss / 2**20, 1)))
        except psutil.Error:
            pass
        time.sleep(interval)
    stderr = proc.stderr.read()
    if proc.returncode:
        print(stderr, file=sys.stderr)
    return proc.returncode, time.perf_counter() - started, samples


def count_output(path: Path) -> dict:
    """Rows, first/last id and error count of the scored CSV, read in streaming blocks."""
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True))
    rows = errors = 0
    first = last = None
    for batch in reader:
        ids = batch.column("id")
        if first is None and len(ids):
            first = ids[0].as_py()
        if len(ids):
            last = ids[-1].as_py()
        rows += batch.num_rows
        errors += batch.num_rows - batch.column("error").null_count
    return {"rows": rows, "first_id": first, "last_id": last, "rows_with_error": errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder (default: the tiny fast path)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the generated files (default: a temp folder)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        source, output = work / "statements.csv", work / "scored.csv"
        started = time.perf_counter()
        generate(source, args.rows)
        generated_s = time.perf_counter() - started
        model = args.model or tiny_model(work)
        cmd = [sys.executable, "-m", "serve.cli", "score", str(source), "-o", str(output),
               "--model", str(model), "--backend", args.backend,
               "--chunk-size", str(args.chunk_size), "--no-progress"]
        code, seconds, samples = run_scoring(cmd)
        if code:
            print(f"detente score failed with exit code {code}", file=sys.stderr)
            return code
        child_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        counted = count_output(output)
        input_mb = source.stat().st_size / 2**20
    peak = max((rss for _, rss in samples), default=0.0)
    quarter = [samples[int(q * (len(samples) - 1))] for q in (0.1, 0.25, 0.5, 0.75, 0.9)
               ] if samples else []
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": args.rows, "input_mb": round(input_mb, 1),
        "model": "tiny fast path (2 layers, 32 wide)" if args.model is None else str(args.model),
        "backend": args.backend, "chunk_size": args.chunk_size,
        "seconds": round(seconds, 1), "generate_seconds": round(generated_s, 1),
        "statements_per_s": round(args.rows / seconds, 1),
        "peak_rss_mb_sampled": peak, "peak_rss_mb_ru_maxrss": round(child_peak_mb, 1),
        "rss_mb_at_10_25_50_75_90_pct_of_run": [rss for _, rss in quarter],
        "goal_peak_rss_mb": GOAL_MB,
        "peak_within_goal": max(peak, child_peak_mb) <= GOAL_MB,
        "output": counted, "row_count_ok": counted["rows"] == args.rows
        and counted["first_id"] == 1 and counted["last_id"] == args.rows,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "score_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    md = (
        "# `detente score` memory on a large CSV\n\n"
        f"{args.rows:,} rows ({input_mb:.0f} MB CSV), model: {report['model']}, backend "
        f"{args.backend}, chunks of {args.chunk_size:,} rows, {os.cpu_count()} CPUs.\n\n"
        "| peak RSS (sampled) | peak RSS (ru_maxrss) | RSS at 10/25/50/75/90 % of the run | "
        "rows out | ids | time | statements/s |\n|---|---|---|---|---|---|---|\n"
        f"| {peak:.0f} MB | {child_peak_mb:.0f} MB | "
        f"{' / '.join(f'{r:.0f}' for r in report['rss_mb_at_10_25_50_75_90_pct_of_run'])} MB | "
        f"{counted['rows']:,} | {counted['first_id']}..{counted['last_id']} | {seconds:.0f} s | "
        f"{report['statements_per_s']:.0f} |\n\n"
        f"Goal: peak RSS <= {GOAL_MB} MB and one output row per input row: "
        f"{'met' if report['peak_within_goal'] and report['row_count_ok'] else 'NOT met'}.\n"
    )
    (args.out / "score_memory.md").write_text(md)
    print(md)
    return 0 if report["peak_within_goal"] and report["row_count_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
