"""Training time and quality of the default recipe and of its shortcuts, side by side.

Each configuration trains from the bundled corpus in this process, one after the other, so
the wall times are comparable (run it with nothing else busy on the machine). Quality is
measured on the corpus's validation and test splits (unseen disputes) and, for sentiment,
on real news sentences: NewsMTSC devtest (../shared/data, rows where all targets agree),
when that folder is present.

    python benchmarks/training_speed_quality.py            # all configurations
    python benchmarks/training_speed_quality.py --only default epochs2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from model.classifier import Classifier
from model.paths import repo_root
from training.arguments import TrainArguments
from training.evaluation import head_metrics, spearman
from training.trainer import train

NEWSMTSC = repo_root().parent / "shared" / "data" / "newsmtsc"
RESULTS = Path(__file__).resolve().parent / "results"

BASE = TrainArguments()
CONFIGS = {
    "default": {},
    "epochs2": {"epochs": 2.0},
    "max_len64": {"max_seq_length": 64},
    "newsmtsc2000": {"extra_data": [str(NEWSMTSC / "train.jsonl")], "extra_data_max_rows": 2000},
}


def real_news_sentiment(clf: Classifier) -> dict | None:
    path = NEWSMTSC / "devtest_mt.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("sentiment")]
    _, probs = clf.predict_proba([r["text"] for r in rows], batch_size=64)
    labels = clf.sentiment_labels
    pred = [labels[i] for i in probs.argmax(axis=1)]
    gold = [r["sentiment"] for r in rows]
    scores = head_metrics(gold, pred, labels)
    score = probs[:, labels.index("positive")] - probs[:, labels.index("negative")]
    return {"n": len(rows), "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
            "spearman": spearman(score.tolist(), gold)}


def run(name: str, overrides: dict, workdir: Path) -> dict:
    args = replace(BASE, output=str(workdir / name), force=True, **overrides)
    started = time.perf_counter()
    result = train(args)
    seconds = time.perf_counter() - started
    clf = Classifier.load(result.output)
    return {
        "config": name, "overrides": overrides, "wall_seconds": round(seconds, 1),
        "validation": result.metrics["validation"], "test": result.metrics["test"],
        "newsmtsc_devtest_sentiment": real_news_sentiment(clf),
        "rows": result.metrics["rows"],
    }


def to_markdown(results: list[dict], meta: dict) -> str:
    lines = [
        "# Training: time and quality per configuration", "",
        f"Machine: {meta['cpus']} CPUs, torch {meta['torch']}, {meta['threads']} threads. "
        f"Run on {meta['date']}. {meta['note']}", "",
        "| config | wall time (s) | ratio to default | val stance F1 | test stance F1 | "
        "test sentiment F1 | real-news sentiment F1 | real-news Spearman |",
        "|---|---|---|---|---|---|---|---|",
    ]
    default = next((r for r in results if r["config"] == "default"), results[0])
    for r in results:
        news = r["newsmtsc_devtest_sentiment"] or {}
        cells = [
            r["config"], f"{r['wall_seconds']:.0f}",
            f"{r['wall_seconds'] / default['wall_seconds']:.2f}",
            f"{r['validation']['stance']['macro_f1']:.3f}",
            f"{r['test']['stance']['macro_f1']:.3f}",
            f"{r['test']['sentiment']['macro_f1']:.3f}",
            f"{news.get('macro_f1', float('nan')):.3f}",
            f"{news.get('spearman') or float('nan'):.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configs to run")
    parser.add_argument("--note", default="Nothing else ran on the machine.",
                        help="what else ran during the measurement")
    options = parser.parse_args()
    names = options.only or list(CONFIGS)
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(name, CONFIGS[name], Path(tmp)) for name in names]
    meta = {"cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"), "platform": platform.platform(),
            "note": options.note}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps({"meta": meta, "results": results},
                                                      indent=2))
    (RESULTS / "training.md").write_text(to_markdown(results, meta))
    print(to_markdown(results, meta))


if __name__ == "__main__":
    main()
