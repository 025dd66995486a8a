"""Print the datasheet's count tables for data/statements.jsonl (Markdown).

Run: python data/tools/corpus_tables.py > /tmp/tables.md
"""

from __future__ import annotations

import pandas as pd

from model.paths import bundled_corpus


def table(frame: pd.DataFrame, rows: str, columns: str) -> str:
    counts = pd.crosstab(frame[rows], frame[columns], margins=True, margins_name="total")
    header = f"| {rows} | " + " | ".join(str(c) for c in counts.columns) + " |"
    lines = [header, "|" + "---|" * (len(counts.columns) + 1)]
    for index, row in counts.iterrows():
        lines.append(f"| {index} | " + " | ".join(str(v) for v in row.values) + " |")
    return "\n".join(lines)


def main() -> None:
    frame = pd.read_json(bundled_corpus(), lines=True)
    frame["hard"] = frame["hard"].map({True: "hard", False: "plain"})
    for rows, columns in [("stance", "split"), ("sentiment", "split"), ("stance", "sentiment"),
                          ("speaker_type", "split"), ("speaker_type", "stance"),
                          ("form", "stance"), ("rule", "stance"), ("dispute", "split"),
                          ("hard", "split")]:
        print(f"### {rows} x {columns}\n\n{table(frame, rows, columns)}\n")


if __name__ == "__main__":
    main()
