"""Assemble data/statements.jsonl from the writing and labelling passes.

Inputs (kept in git under data/labelling/ so the numbers in the datasheet can be rebuilt):
- pass1.jsonl: every written row with the writer's labels and metadata;
- pass2.jsonl: the blind second pass (id, stance, sentiment);
- adjudication.jsonl: the third read of each disagreement (id, stance, sentiment, or
  drop=true);
- written/w7.jsonl, written/w8.jsonl (first pass), written/w7_pass2.jsonl,
  written/w8_pass2.jsonl (blind second pass) and written/adjudication.jsonl: the rows
  written for the patterns real text showed the model gets wrong (2026-12), same process;
- recheck.jsonl: rows of the first batches whose labels the December 2026 tie-breaks of
  LABELS.md changed (id, stance, sentiment, rule), applied last.

Output: data/statements.jsonl with the split assigned by dispute, and
data/labelling/agreement.json with raw agreement and Cohen's kappa per task.

Run: python data/tools/build_corpus.py
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

DATA = Path(__file__).resolve().parents[1]
LABELLING = DATA / "labelling"

# Whole disputes go to validation and test, so both measure transfer to unseen conflicts.
TEST_DISPUTES = {
    "sudan-civil-war", "kashmir", "serbia-kosovo", "venezuela-talks",
    "port-kessling-dock-strike", "western-sahara",
}
VALIDATION_DISPUTES = {
    "ethiopia-tigray", "cyprus-reunification", "yemen-war", "afghanistan-taliban",
    "sarn-strait-fisheries",
}
FIELDS = ("id", "text", "stance", "sentiment", "dispute", "speaker_type", "form", "hard",
          "rule", "split")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def split_of(dispute: str) -> str:
    if dispute in TEST_DISPUTES:
        return "test"
    if dispute in VALIDATION_DISPUTES:
        return "validation"
    return "train"


def agreement(first: list[dict], second: dict[str, dict]) -> dict:
    out = {}
    for task in ("stance", "sentiment"):
        a = [r[task] for r in first if r["id"] in second]
        b = [second[r["id"]][task] for r in first if r["id"] in second]
        out[task] = {
            "rows": len(a),
            "raw_agreement": round(sum(x == y for x, y in zip(a, b)) / len(a), 4),
            "cohen_kappa": round(float(cohen_kappa_score(a, b)), 4),
        }
    return out


WRITTEN_BATCHES = ("w7", "w8")


def read_optional(path: Path) -> list[dict]:
    return read_jsonl(path) if path.exists() else []


def build() -> dict:
    first = read_jsonl(LABELLING / "pass1.jsonl")
    second = {r["id"]: r for r in read_jsonl(LABELLING / "pass2.jsonl")}
    adjudicated = {r["id"]: r for r in read_optional(LABELLING / "adjudication.jsonl")}
    new_first = [r for b in WRITTEN_BATCHES
                 for r in read_optional(LABELLING / "written" / f"{b}.jsonl")]
    new_second = {r["id"]: r for b in WRITTEN_BATCHES
                  for r in read_optional(LABELLING / "written" / f"{b}_pass2.jsonl")}
    adjudicated.update({r["id"]: r for r in
                        read_optional(LABELLING / "written" / "adjudication.jsonl")})
    recheck = {r["id"]: r for r in read_optional(LABELLING / "recheck.jsonl")}
    old_first, old_second = first, second
    first = first + new_first
    second = {**second, **new_second}
    rows, dropped, unresolved = [], [], []
    for row in first:
        other = second.get(row["id"])
        agree = other and all(row[t] == other[t] for t in ("stance", "sentiment"))
        if not agree:
            decision = adjudicated.get(row["id"])
            if decision is None:
                unresolved.append(row["id"])
                continue
            if decision.get("drop"):
                dropped.append(row["id"])
                continue
            row = {**row, "stance": decision["stance"], "sentiment": decision["sentiment"]}
        if row["id"] in recheck:
            change = recheck[row["id"]]
            row = {**row, "stance": change["stance"], "sentiment": change["sentiment"],
                   "rule": change["rule"], "hard": change["rule"] is not None or row["hard"]}
        rows.append({**{k: row.get(k) for k in FIELDS}, "split": split_of(row["dispute"])})
    with (DATA / "statements.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    stats = {
        "agreement_pass1_vs_pass2": agreement(old_first, old_second),
        "agreement_pass1_vs_pass2_2026_12_rows": (
            agreement(new_first, new_second) if new_second else None),
        "rechecked_under_new_tie_breaks": len(recheck),
        "rows_written": len(first),
        "rows_kept": len(rows),
        "dropped_after_adjudication": len(dropped),
        "unresolved": len(unresolved),
        "disagreements": sum(
            1 for r in first if r["id"] not in second
            or any(r[t] != second[r["id"]][t] for t in ("stance", "sentiment"))
        ),
        "per_split": dict(Counter(r["split"] for r in rows)),
    }
    (LABELLING / "agreement.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


if __name__ == "__main__":
    print(json.dumps(build(), indent=2))
