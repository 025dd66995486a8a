"""Turning the user's files into train / validation / test tables, checked before training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from training.data import ColumnNames, DataError, load_labelled
from training.validation import normalise_text, validate


@dataclass
class DataSplits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame | None


def load_checked(
    path: str, columns: ColumnNames, label_sets: dict[str, Sequence[str]]
) -> pd.DataFrame:
    """Load a labelled file and raise DataError listing every problem found in it."""
    frame = load_labelled(path, columns)
    report = validate(frame, path, label_sets=label_sets)
    if not report.ok:
        raise DataError(report.render())
    return frame


def split_frame(
    frame: pd.DataFrame,
    *,
    validation_fraction: float,
    seed: int,
    has_separate_validation: bool,
    has_separate_test: bool,
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Use the split column when there is one; otherwise hold out a stratified fraction."""
    if "split" in frame.columns and frame["split"].notna().any():
        parts = {name: frame[frame["split"] == name] for name in ("train", "validation", "test")}
        return parts["train"], parts["validation"], parts["test"]
    if has_separate_validation:
        return frame, None, None
    stratify = choose_strata(frame, validation_fraction)
    train, validation = train_test_split(
        frame, test_size=validation_fraction, random_state=seed, stratify=stratify
    )
    return train, validation, None


def choose_strata(frame: pd.DataFrame, validation_fraction: float) -> pd.Series | None:
    """Stratify by stance x sentiment if the hold-out is big enough, else by stance, else not."""
    n_validation = int(round(len(frame) * validation_fraction))
    candidates = [
        frame["stance"].fillna("") + "|" + frame["sentiment"].fillna(""),
        frame["stance"].fillna(""),
    ]
    for strata in candidates:
        counts = strata.value_counts()
        if counts.min() >= 2 and len(counts) <= n_validation:
            return strata
    return None


def load_extra(
    path: str,
    label_sets: dict[str, Sequence[str]],
    *,
    max_rows: int | None,
    seed: int,
    log: Callable[[str], None],
) -> pd.DataFrame:
    """Extra (often single-head) training rows from a public source, cleaned with a report.

    Such files routinely hold unlabelled rows, repeats and a few contradictions; they are
    only ever training material, so instead of refusing them, those rows are left out and
    the counts printed. Unknown labels and empty texts still stop the run.
    """
    frame = load_labelled(path, ColumnNames()).drop(columns=["split"], errors="ignore")
    heads = [h for h in label_sets if h in frame.columns]
    unlabelled = frame[heads].isna().all(axis=1)
    frame = frame[~unlabelled]
    keys = frame["text"].map(lambda t: normalise_text(t) if isinstance(t, str) else "")
    label_count = frame.assign(_k=keys).groupby("_k")[heads].nunique(dropna=False).max(axis=1)
    conflicting = keys.map(label_count) > 1
    repeated = keys.duplicated(keep="first") & ~conflicting
    frame = frame[~conflicting & ~repeated]
    log(f"{path}: left out {int(unlabelled.sum())} unlabelled, {int(conflicting.sum())} "
        f"conflicting and {int(repeated.sum())} repeated rows; {len(frame)} rows remain")
    report = validate(frame.reset_index(drop=True), path, label_sets=label_sets)
    if not report.ok:
        raise DataError(report.render())
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
        log(f"{path}: using a random sample of {max_rows} rows (--extra-data-max-rows)")
    return frame.reset_index(drop=True)


def load_splits(
    data: str,
    *,
    columns: ColumnNames,
    label_sets: dict[str, Sequence[str]],
    validation_data: str | None = None,
    test_data: str | None = None,
    extra_data: Sequence[str] = (),
    validation_fraction: float = 0.15,
    seed: int = 42,
    extra_data_max_rows: int | None = None,
    log: Callable[[str], None] = print,
) -> DataSplits:
    frame = load_checked(data, columns, label_sets)
    train, validation, test = split_frame(
        frame,
        validation_fraction=validation_fraction,
        seed=seed,
        has_separate_validation=validation_data is not None,
        has_separate_test=test_data is not None,
    )
    if validation_data is not None:
        validation = load_checked(validation_data, columns, label_sets)
    if test_data is not None:
        test = load_checked(test_data, columns, label_sets)
    if validation is None or len(validation) == 0:
        raise DataError(f"{data}: no validation rows (split=validation) and no --validation-data")
    if len(train) == 0:
        raise DataError(f"{data}: no training rows")
    for path in extra_data:
        extra = load_extra(path, label_sets, max_rows=extra_data_max_rows, seed=seed, log=log)
        train = pd.concat([train, extra], ignore_index=True)
    return DataSplits(
        train=train.reset_index(drop=True),
        validation=validation.reset_index(drop=True),
        test=None if test is None or len(test) == 0 else test.reset_index(drop=True),
    )
