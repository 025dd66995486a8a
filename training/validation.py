"""Checks on a labelled table, shared by ``detente data check``, training and retraining.

Every problem is reported with the 1-based data row it concerns (the first data row of a
CSV, the first line of a JSONL file, is row 1), so a user can find and fix it. Training
runs these checks before it touches the model, so bad data never surfaces as a traceback
halfway through an epoch.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from model.labels import SENTIMENT_LABELS, STANCE_LABELS

SPLITS = ("train", "validation", "test")
CORPUS_COLUMNS = (
    "id", "text", "stance", "sentiment", "dispute", "speaker_type", "form", "hard", "rule", "split",
)
NEAR_DUPLICATE_NGRAM = 5
NEAR_DUPLICATE_JACCARD = 0.5


@dataclass
class Problem:
    severity: str  # "error" or "warning"
    message: str
    rows: list[int] = field(default_factory=list)

    def render(self, max_rows: int = 20) -> str:
        if not self.rows:
            return f"{self.severity.upper()}: {self.message}"
        shown = ", ".join(str(r) for r in self.rows[:max_rows])
        more = f" and {len(self.rows) - max_rows} more" if len(self.rows) > max_rows else ""
        return f"{self.severity.upper()}: {self.message} (rows {shown}{more})"


@dataclass
class Report:
    source: str
    n_rows: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self) -> str:
        head = f"{self.source}: {self.n_rows} rows, "
        if not self.problems:
            return head + "no problems found"
        lines = [head + f"{len(self.errors)} error(s), "
                 f"{len(self.problems) - len(self.errors)} warning(s)"]
        lines += ["  " + p.render() for p in self.problems]
        return "\n".join(lines)


def normalise_text(text: str) -> str:
    """Lower case, letters and digits only, single spaces: what 'the same statement' means."""
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def row_numbers(mask: Iterable[bool]) -> list[int]:
    return [i + 1 for i, flag in enumerate(mask) if flag]


def check_columns(frame: pd.DataFrame, required: Sequence[str]) -> list[Problem]:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        return [Problem("error", f"missing column(s) {missing}; columns are {list(frame.columns)}")]
    return []


def check_texts(frame: pd.DataFrame) -> list[Problem]:
    problems = []
    texts = frame["text"]
    not_str = [not isinstance(t, str) and t is not None and t == t for t in texts]
    missing = [t is None or (isinstance(t, float) and t != t) for t in texts]
    empty = [isinstance(t, str) and not t.strip() for t in texts]
    if any(missing):
        problems.append(Problem("error", "missing text", row_numbers(missing)))
    if any(not_str):
        problems.append(Problem("error", "text is not a string", row_numbers(not_str)))
    if any(empty):
        problems.append(Problem("error", "empty or whitespace-only text", row_numbers(empty)))
    return problems


def check_labels(
    frame: pd.DataFrame, label_sets: dict[str, Sequence[str]]
) -> list[Problem]:
    problems = []
    for head, allowed in label_sets.items():
        if head not in frame.columns:
            continue
        values = frame[head]
        bad = [not is_missing(v) and v not in allowed for v in values]
        if any(bad):
            unknown = sorted({str(v) for v, b in zip(values, bad) if b})
            problems.append(Problem(
                "error",
                f"unknown {head} label(s) {unknown}; allowed: {list(allowed)}",
                row_numbers(bad),
            ))
    heads = [h for h in label_sets if h in frame.columns]
    if heads:
        unlabelled = [all(is_missing(frame[h].iloc[i]) for h in heads) for i in range(len(frame))]
        if any(unlabelled):
            problems.append(Problem("error", f"row has no label for any head {heads}",
                                    row_numbers(unlabelled)))
    return problems


def check_duplicates(frame: pd.DataFrame, heads: Sequence[str]) -> list[Problem]:
    """Exact duplicates (after normalisation), and one text with conflicting labels."""
    problems = []
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(frame["text"]):
        if isinstance(text, str) and text.strip():
            groups[normalise_text(text)].append(i)
    dup_rows, conflict_rows = [], []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        labels = {tuple(frame.iloc[r][h] for h in heads) for r in rows}
        (conflict_rows if len(labels) > 1 else dup_rows).extend(r + 1 for r in rows)
    if conflict_rows:
        problems.append(Problem("error", "the same text carries conflicting labels",
                                sorted(conflict_rows)))
    if dup_rows:
        problems.append(Problem("error", "duplicate text (same statement more than once)",
                                sorted(dup_rows)))
    return problems


def check_ids(frame: pd.DataFrame) -> list[Problem]:
    """Ids must be unique; a row without one is only a warning (ids are optional)."""
    if "id" not in frame.columns:
        return []
    missing = [is_missing(v) or (isinstance(v, str) and not v.strip()) for v in frame["id"]]
    ids = pd.Series([None if gone else str(v) for v, gone in zip(frame["id"], missing)],
                    dtype=object)
    dup = (ids.duplicated(keep=False) & ids.notna()).tolist()
    problems = [Problem("error", "duplicate id", row_numbers(dup))] if any(dup) else []
    if any(missing):
        problems.append(Problem("warning", "missing id", row_numbers(missing)))
    return problems


def hashable(value: object) -> object:
    """A value usable as a group key: JSON lists and objects become their text."""
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def check_splits(frame: pd.DataFrame) -> list[Problem]:
    """Split values, disputes confined to one split, and no near-duplicates across splits."""
    if "split" not in frame.columns:
        return []
    problems = []
    split = frame["split"].map(hashable)
    bad = [s not in SPLITS and not (isinstance(s, str) and s.startswith("test_"))
           for s in split]
    if any(bad):
        problems.append(Problem("error", f"unknown split; allowed: {list(SPLITS)} or test_<name> "
                                "(an evaluation-only split)",
                                row_numbers(bad)))
    for group in ("dispute", "doc_id"):  # a dispute or a document never spans splits
        if group not in frame.columns:
            continue
        key = frame[group].map(hashable)
        splits_of = split.groupby(key).agg(lambda s: sorted(set(s), key=str))
        for name, splits in splits_of.items():
            if len(splits) > 1:
                rows = row_numbers((key == name).tolist())
                problems.append(Problem(
                    "error", f"{group} {name!r} appears in several splits {splits}", rows))
    pairs = near_duplicate_pairs(frame["text"].tolist(), split.tolist())
    if pairs:
        rows = sorted({r + 1 for pair in pairs for r in pair})
        problems.append(Problem(
            "error",
            f"{len(pairs)} near-duplicate pair(s) across splits (same normalised text or "
            f"word {NEAR_DUPLICATE_NGRAM}-gram Jaccard >= {NEAR_DUPLICATE_JACCARD})",
            rows,
        ))
    return problems


def shingles(text: str, n: int = NEAR_DUPLICATE_NGRAM) -> set[tuple[str, ...]]:
    words = normalise_text(text).split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def near_duplicate_pairs(
    texts: Sequence[object], splits: Sequence[object]
) -> list[tuple[int, int]]:
    """Pairs of rows in different splits whose texts are (nearly) the same.

    An inverted index over word n-grams finds candidate pairs without comparing every pair.
    """
    sets = [shingles(t) if isinstance(t, str) else set() for t in texts]
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, grams in enumerate(sets):
        for gram in grams:
            index[gram].append(i)
    candidates: set[tuple[int, int]] = set()
    for rows in index.values():
        if len(rows) > 200:  # a stock phrase shared by many rows says nothing about duplication
            continue
        for a in range(len(rows)):
            for b in range(a + 1, len(rows)):
                if splits[rows[a]] != splits[rows[b]]:
                    candidates.add((rows[a], rows[b]))
    pairs = []
    for i, j in sorted(candidates):
        union = len(sets[i] | sets[j])
        if union and len(sets[i] & sets[j]) / union >= NEAR_DUPLICATE_JACCARD:
            pairs.append((i, j))
    return pairs


def validate(
    frame: pd.DataFrame,
    source: str,
    *,
    label_sets: dict[str, Sequence[str]] | None = None,
    required: Sequence[str] = ("text",),
) -> Report:
    """Run every check that applies to the columns present; see the module docstring."""
    label_sets = label_sets or {"stance": STANCE_LABELS, "sentiment": SENTIMENT_LABELS}
    report = Report(source=source, n_rows=len(frame))
    report.problems += check_columns(frame, required)
    if report.problems or "text" not in frame.columns:
        return report
    if len(frame) == 0:
        report.problems.append(Problem("error", "no data rows (header only?)"))
        return report
    report.problems += check_texts(frame)
    report.problems += check_labels(frame, label_sets)
    heads = [h for h in label_sets if h in frame.columns]
    report.problems += check_duplicates(frame, heads)
    report.problems += check_ids(frame)
    report.problems += check_splits(frame)
    return report
