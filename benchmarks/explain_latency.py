"""Latency of the demo's word-occlusion explanation on a 40-word statement.

The goal (issue 6) is at most 1 s on this 2-core CPU with the MiniLM-size default encoder.
Weights do not change the cost, so an untrained DetenteModel on the packaged MiniLM stands in
for the trained default model. Run:

    .venv/bin/python benchmarks/explain_latency.py --runs 10 \
        --json benchmarks/explain_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STATEMENT_40_WORDS = (
    "The foreign minister said on Tuesday that her government remains ready to resume talks "
    "in Geneva, but accused the rebel command of shelling two villages near the border "
    "overnight and warned that any further attack would end the fragile ceasefire."
)


# The demo's longest input: 2,000 characters, read in sentence windows of at most 128
# tokens so that every word is scored (occluded in groups of words: at most 49 texts).
STATEMENT_MAX = (STATEMENT_40_WORDS + " ") * 8
STATEMENT_MAX = STATEMENT_MAX[: STATEMENT_MAX.rfind(" ", 0, 2000)]


def build_runner(folder: Path):
    """A MiniLM-size detente model saved and loaded the way the demo loads one."""
    from transformers import AutoTokenizer

    from model import DetenteModel, save_model
    from model.classifier import Classifier
    from model.paths import default_base_model
    from serve.demo_runner import ModelRunner

    base = default_base_model()
    model = DetenteModel.from_base_encoder(base)
    save_model(model, AutoTokenizer.from_pretrained(base, local_files_only=True), folder)
    return ModelRunner(Classifier.load(folder))


def measure(runner, text: str, runs: int) -> dict:
    runner.explain(text)  # warm-up: first call allocates buffers
    times, n_texts = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        explanation = runner.explain(text)
        times.append(time.perf_counter() - started)
        n_texts = explanation.n_texts
    ordered = sorted(times)
    return {
        "characters": len(text),
        "words": len(text.split()),
        "tokens": runner.token_count(text),
        "texts_per_forward_pass": n_texts,
        "runs": runs,
        "median_s": round(statistics.median(times), 4),
        "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 4),
        "min_s": round(ordered[0], 4),
        "max_s": round(ordered[-1], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        runner = build_runner(Path(tmp))
        result = measure(runner, STATEMENT_40_WORDS, args.runs)
        result["longest_input"] = measure(runner, STATEMENT_MAX, args.runs)
    result.update({
        "model": "DetenteModel on all-MiniLM-L6-v2 (6 layers, 384 wide), untrained heads",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "goal_s": 1.0,
    })
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
