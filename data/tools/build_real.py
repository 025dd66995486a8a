"""Assemble data/real_statements.jsonl from the sample and its labelling passes.

Inputs (in git under data/labelling/real/, so every number in the datasheet can be rebuilt):
- sample.jsonl: the drawn sentences with source, doc_id, date, pre-score bucket and split
  (data/tools/sample_real.py);
- pass1/batch_NN.jsonl and pass2/batch_NN.jsonl: two blind labelling passes (id, stance,
  sentiment, pattern, optional unusable);
- adjudication.jsonl: a third read of every row where the passes disagree or either pass
  found it unusable (id, stance, sentiment, pattern, or drop=true).

Output: data/real_statements.jsonl (id, text, stance, sentiment, pattern, source, doc_id,
date, split) and data/labelling/real/agreement.json (raw agreement and Cohen's kappa per
source and head). With --disagreements FILE it writes the rows still to adjudicate instead.

Run: python data/tools/build_real.py
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from training.validation import near_duplicate_pairs

DATA = Path(__file__).resolve().parents[1]
REAL = DATA / "labelling" / "real"
HEADS = ("stance", "sentiment")
FIELDS = ("id", "text", "stance", "sentiment", "pattern", "source", "doc_id", "date", "split")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def read_pass(name: str) -> dict[str, dict]:
    return {r["id"]: r for path in sorted((REAL / name).glob("batch_*.jsonl"))
            for r in read_jsonl(path)}


def needs_adjudication(first: dict, second: dict) -> bool:
    return bool(any(first[h] != second[h] for h in HEADS)
                or first.get("unusable") or second.get("unusable"))


def agreement(sample: list[dict], first: dict, second: dict) -> dict:
    out = {}
    for source in sorted({r["source"] for r in sample}) + ["all"]:
        ids = [r["id"] for r in sample if source in ("all", r["source"])]
        out[source] = {}
        for head in HEADS:
            a = [first[i][head] for i in ids]
            b = [second[i][head] for i in ids]
            out[source][head] = {
                "rows": len(ids),
                "raw_agreement": round(sum(x == y for x, y in zip(a, b)) / len(a), 4),
                "cohen_kappa": round(float(cohen_kappa_score(a, b)), 4),
            }
    return out


def build() -> dict:
    sample = read_jsonl(REAL / "sample.jsonl")
    first, second = read_pass("pass1"), read_pass("pass2")
    missing = [r["id"] for r in sample if r["id"] not in first or r["id"] not in second]
    if missing:
        raise SystemExit(f"{len(missing)} sampled rows lack a label in a pass, e.g. {missing[:5]}")
    adjudicated = {}
    if (REAL / "adjudication.jsonl").exists():
        adjudicated = {r["id"]: r for r in read_jsonl(REAL / "adjudication.jsonl")}
    rows, dropped, unresolved = [], [], []
    for row in sample:
        a, b = first[row["id"]], second[row["id"]]
        label = a
        if needs_adjudication(a, b):
            label = adjudicated.get(row["id"])
            if label is None:
                unresolved.append(row["id"])
                continue
            if label.get("drop"):
                dropped.append(row["id"])
                continue
        rows.append({k: ({**row, **{f: label[f] for f in (*HEADS, "pattern")}}).get(k)
                     for k in FIELDS})
    if unresolved:
        raise SystemExit(f"{len(unresolved)} rows need adjudication; run with --disagreements")
    rows, repeats = drop_cross_split_repeats(rows)
    with (DATA / "real_statements.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    stats = {
        "agreement_pass1_vs_pass2": agreement(sample, first, second),
        "rows_sampled": len(sample),
        "adjudicated": sum(needs_adjudication(first[r["id"]], second[r["id"]]) for r in sample),
        "dropped_after_adjudication": len(dropped),
        "dropped_as_repeats_across_splits": repeats,
        "rows_kept": len(rows),
        "per_split": dict(Counter(r["split"] for r in rows)),
        "per_source": dict(Counter(r["source"] for r in rows)),
        "stance": dict(Counter(r["stance"] for r in rows)),
        "sentiment": dict(Counter(r["sentiment"] for r in rows)),
    }
    (REAL / "agreement.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def drop_cross_split_repeats(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """Leave out the train side of a (near-)repeat across splits.

    Official statements repeat boilerplate across documents; a train row that nearly repeats
    a validation or test row would leak it, whatever the document split says.
    """
    pairs = near_duplicate_pairs([r["text"] for r in rows], [r["split"] for r in rows])
    drop = set()
    for a, b in pairs:
        drop.add(a if rows[a]["split"] == "train" else b)
    return [r for i, r in enumerate(rows) if i not in drop], sorted(rows[i]["id"] for i in drop)


def write_disagreements(path: Path) -> int:
    """The rows to adjudicate, with text only (the adjudicator sees both passes' labels)."""
    sample = {r["id"]: r for r in read_jsonl(REAL / "sample.jsonl")}
    first, second = read_pass("pass1"), read_pass("pass2")
    rows = [{"id": i, "text": sample[i]["text"],
             "pass1": {k: first[i].get(k) for k in (*HEADS, "pattern", "unusable")},
             "pass2": {k: second[i].get(k) for k in (*HEADS, "pattern", "unusable")}}
            for i in sample if needs_adjudication(first[i], second[i])]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disagreements", type=Path, help="write the rows to adjudicate here")
    args = parser.parse_args()
    if args.disagreements:
        print(f"{write_disagreements(args.disagreements)} rows to adjudicate")
    else:
        print(json.dumps(build(), indent=2))


if __name__ == "__main__":
    main()
