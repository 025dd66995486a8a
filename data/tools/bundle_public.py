"""Copy the public reader-rated sentiment sets the default model trains on into data/.

Why bundled: the training recipe must run from a clean clone, which has no ../shared.

- data/vader_nyt.jsonl: NYT editorial sentences with 20 human tone ratings each (VADER,
  Hutto & Gilbert 2014; MIT). ``sentiment_shares`` is the share of raters who rated the
  sentence below zero, at zero and above zero: the graded target of the sentiment head.
  ``sentiment`` is a three-way label from the mean rating (<= -0.5 negative, >= 0.5
  positive), used to report macro-F1. Split 60/20/20 by editorial (``doc_id``), so the
  Spearman correlation with ``mean_rating`` is measured on editorials never trained on;
  1,000 of the train rows are kept (training time on 2 cores), validation and test whole.
- data/newsmtsc.jsonl: a seeded sample of 600 NewsMTSC train sentences whose targets agree
  (Hamborg & Donnay 2021; MIT), all ``split=train``. NewsMTSC rates sentiment *towards a
  person*, which is near but not the same as overall tone, so its rows weigh 0.5.

Run: python data/tools/bundle_public.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parents[1]
NEWSMTSC_ROWS = 600
VADER_TRAIN_ROWS = 1000  # of 3,042 train-split rows: what 2 CPU cores can train on in minutes
NEWSMTSC_WEIGHT = 0.5
SEED = 7


def split_of(doc_id: str) -> str:
    h = int(hashlib.sha256(doc_id.encode()).hexdigest(), 16) % 10
    return "train" if h < 6 else ("validation" if h < 8 else "test")


def three_way(mean_rating: float) -> str:
    if mean_rating <= -0.5:
        return "negative"
    return "positive" if mean_rating >= 0.5 else "neutral"


def shares(ratings: list[int]) -> dict[str, float]:
    n = len(ratings)
    return {
        "negative": round(sum(r < 0 for r in ratings) / n, 4),
        "neutral": round(sum(r == 0 for r in ratings) / n, 4),
        "positive": round(sum(r > 0 for r in ratings) / n, 4),
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def same_text(text: str) -> str:
    """The project's notion of 'the same statement' (training.validation.normalise_text)."""
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


def vader_rows(shared: Path) -> list[dict]:
    """One row per distinct sentence. The set repeats some snippets (rated again by other
    raters); their ratings are pooled into the first occurrence's row."""
    first: dict[str, dict] = {}
    with open(shared / "vader_nyt" / "nyt_editorial_snippets.jsonl", encoding="utf-8") as fh:
        for line in fh:
            raw = json.loads(line)
            key = same_text(raw["text"])
            if key in first:
                first[key]["ratings"] += raw["ratings"]
            else:
                first[key] = {**raw, "ratings": list(raw["ratings"])}
    rows = []
    for raw in first.values():
        doc = raw["id"].rsplit("_", 1)[0]
        mean = round(sum(raw["ratings"]) / len(raw["ratings"]), 4)
        rows.append({
            "id": raw["id"], "text": raw["text"], "sentiment": three_way(mean),
            "sentiment_shares": shares(raw["ratings"]), "mean_rating": mean,
            "n_ratings": len(raw["ratings"]), "source": "vader_nyt", "doc_id": doc,
            "split": split_of(doc),
        })
    train = [r for r in rows if r["split"] == "train"]
    keep = {r["id"] for r in random.Random(SEED).sample(train, VADER_TRAIN_ROWS)}
    return [r for r in rows if r["split"] != "train" or r["id"] in keep]


def newsmtsc_rows(shared: Path) -> list[dict]:
    with open(shared / "newsmtsc" / "train.jsonl", encoding="utf-8") as fh:
        raw = [json.loads(line) for line in fh if line.strip()]
    labelled = [r for r in raw if r.get("sentiment") in ("negative", "neutral", "positive")]
    seen, unique = set(), []
    for r in labelled:
        key = same_text(r["text"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    sample = random.Random(SEED).sample(unique, NEWSMTSC_ROWS)
    return [{"id": f"newsmtsc-{i:04d}", "text": r["text"], "sentiment": r["sentiment"],
             "weight": NEWSMTSC_WEIGHT, "source": "newsmtsc", "split": "train"}
            for i, r in enumerate(sample, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DATA.parents[1] / "shared" / "data")
    args = parser.parse_args()
    write_jsonl(DATA / "vader_nyt.jsonl", vader_rows(args.shared))
    write_jsonl(DATA / "newsmtsc.jsonl", newsmtsc_rows(args.shared))
    licences = DATA / "licenses"
    licences.mkdir(exist_ok=True)
    shutil.copy(args.shared / "vader_nyt" / "LICENSE", licences / "LICENSE-vader_nyt")
    shutil.copy(args.shared / "newsmtsc" / "LICENSE", licences / "LICENSE-newsmtsc")
    for name in ("ungdc", "wh_briefings", "wikinews"):
        shutil.copy(args.shared / "real_pool" / f"LICENSE-{name}", licences / f"LICENSE-{name}")
    print("wrote data/vader_nyt.jsonl, data/newsmtsc.jsonl and data/licenses/")


if __name__ == "__main__":
    main()
