"""Turning the user's files into train / validation / test tables, checked before training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from model.errors import DataError
from training.data import ColumnNames, load_labelled
from training.validation import normalise_text, validate

HELD_OUT_PREFIX = "test_"


@dataclass
class DataSplits:
    """The rows of a run. ``held_out`` holds extra evaluation-only splits (``test_*``), such as
    a whole source that no training or model choice may see."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame | None
    held_out: dict[str, pd.DataFrame] = field(default_factory=dict)

    def evaluation_sets(self) -> dict[str, pd.DataFrame]:
        """Every split that reports quality, by name: validation, test and the held-out ones."""
        sets = {"validation": self.validation}
        if self.test is not None:
            sets["test"] = self.test
        return {**sets, **self.held_out}


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
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Use the split column when there is one; otherwise hold out a stratified fraction.

    ``test_*`` rows are in none of the three (see ``held_out_parts``).
    """
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


def held_out_parts(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The evaluation-only splits (``test_unseen`` ...) of a table, by name."""
    if "split" not in frame.columns:
        return {}
    names = sorted({s for s in frame["split"].dropna().unique()
                    if isinstance(s, str) and s.startswith(HELD_OUT_PREFIX)})
    return {name: frame[frame["split"] == name].reset_index(drop=True) for name in names}


def with_source(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    """Rows keep their ``source``; a file without one is named after itself (per-source
    metrics then tell the written corpus from real text)."""
    name = Path(path).stem
    if "source" not in frame.columns:
        return frame.assign(source=name)
    return frame.assign(source=frame["source"].fillna(name))


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
    data: str | Sequence[str],
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
    """Train / validation / test (and held-out) rows of one or more labelled files.

    Each file is split on its own (its split column, or a stratified hold-out) and the parts
    are joined, so a written corpus and a real-text set keep the splits they were built with.
    """
    paths = [data] if isinstance(data, str | Path) else list(data)
    trains, validations, tests, held_out = [], [], [], {}
    for path in paths:
        frame = with_source(load_checked(str(path), columns, label_sets), str(path))
        train, validation, test = split_frame(
            frame,
            validation_fraction=validation_fraction,
            seed=seed,
            has_separate_validation=validation_data is not None,
        )
        trains.append(train)
        validations += [validation] if validation is not None else []
        tests += [test] if test is not None else []
        for name, part in held_out_parts(frame).items():
            held_out[name] = pd.concat([held_out.get(name), part], ignore_index=True)
    train = pd.concat(trains, ignore_index=True)
    validation = pd.concat(validations, ignore_index=True) if validations else None
    test = pd.concat(tests, ignore_index=True) if tests else None
    where = ", ".join(str(p) for p in paths)
    if validation_data is not None:
        validation = with_source(load_checked(validation_data, columns, label_sets),
                                 validation_data)
    if test_data is not None:
        test = with_source(load_checked(test_data, columns, label_sets), test_data)
    if validation is None or len(validation) == 0:
        raise DataError(f"{where}: no validation rows (split=validation) and no --validation-data")
    if len(train) == 0:
        raise DataError(f"{where}: no training rows")
    for path in extra_data:
        extra = load_extra(path, label_sets, max_rows=extra_data_max_rows, seed=seed, log=log)
        train = pd.concat([train, with_source(extra, path)], ignore_index=True)
    return DataSplits(
        train=train.reset_index(drop=True),
        validation=validation.reset_index(drop=True),
        test=None if test is None or len(test) == 0 else test.reset_index(drop=True),
        held_out=held_out,
    )
