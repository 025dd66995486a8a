"""``detente retrain``: continue training a fine-tuned model on newly labelled rows.

Fine-tuning on a few hundred new rows alone makes a model forget what it knew
(catastrophic forgetting), so each run replays a random sample of the original training
data beside the new rows. Part of the new rows is held out, and the run reports the old and
the new model on the original test split and on that held-out part, so the user sees both
what was gained and what was lost.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from model.classifier import Classifier
from model.errors import DataError
from model.labels import HEADS
from model.modeling import DetenteModel
from model.persistence import load_model
from training.arguments import RetrainArguments, TrainArguments
from training.bundled_data import REAL_SOURCES, replay_data_files
from training.data import ColumnNames, load_labelled
from training.finishing import choose_scoring_backend, finish, selection_rows
from training.metrics import head_scores
from training.output import check_writable, checkpoint_dir_of
from training.splits import DataSplits, choose_strata, load_checked, with_source
from training.trainer import fit
from training.validation import normalise_text, validate


def resolve_output(args: RetrainArguments) -> Path:
    source = Path(args.from_model).resolve()
    if args.output is None:
        if not args.force:
            raise FileExistsError(
                "retrain never overwrites the model it starts from: pass --output NEW_FOLDER, "
                "or --force to replace --from in place"
            )
        output = source
    else:
        output = Path(args.output)
    if (output / "config.json").exists() and not args.force:
        raise FileExistsError(f"a model already exists in {output}; pass --force to overwrite it")
    check_writable(output)
    check_writable(Path(f"{output}.checkpoints"))
    return output


def deduplicate_latest(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """Keep the last row of each statement: a later correction overrides an earlier one.

    Returns the rows kept and their 1-based row numbers in the file, so problems found in
    them are reported where the user can find them. Rows without words to compare (missing,
    non-text, blank) are all kept, for validation to report.
    """
    keys = [normalise_text(t) if isinstance(t, str) else "" for t in frame["text"]]
    keys = pd.Series([k or f"\0row {i}" for i, k in enumerate(keys)], dtype=object)
    keep = (~keys.duplicated(keep="last")).to_numpy()
    file_rows = [i + 1 for i, kept in enumerate(keep) if kept]
    return frame[keep].reset_index(drop=True), file_rows


def label_plan(old: list[str], new_data: pd.Series, explicit: list[str] | None) -> list[str]:
    if explicit:
        return list(explicit)
    seen = [v for v in pd.unique(new_data.dropna()) if v not in old]
    return list(old) + sorted(seen)


def describe_mapping(head: str, old: list[str], new: list[str]) -> str:
    kept = [label for label in new if label in old]
    added = [label for label in new if label not in old]
    dropped = [label for label in old if label not in new]
    if not added and not dropped:
        return f"{head}: labels unchanged {new}"
    return (f"{head}: {old} -> {new}; kept {kept}, added {added} (new head rows initialised "
            f"from the mean of the kept rows), dropped {dropped} (their rows removed)")


def remap_head(head: nn.Linear, old: list[str], new: list[str]) -> nn.Linear:
    """A head for the ``new`` labels: kept labels keep their weights, new ones start neutral.

    New rows start at the mean of the old rows, so a new label begins as likely as an average
    old label instead of at a random logit.
    """
    fresh = nn.Linear(head.in_features, len(new))
    with torch.no_grad():
        mean_w, mean_b = head.weight.mean(dim=0), head.bias.mean()
        for i, label in enumerate(new):
            if label in old:
                j = old.index(label)
                fresh.weight[i] = head.weight[j]
                fresh.bias[i] = head.bias[j]
            else:
                fresh.weight[i] = mean_w
                fresh.bias[i] = mean_b
    return fresh


def apply_label_sets(model: DetenteModel, label_sets: dict[str, list[str]]) -> None:
    for head in HEADS:
        old = model.config.labels_of(head)
        new = label_sets[head]
        if old != new:
            layer = getattr(model, f"{head}_head")
            setattr(model, f"{head}_head", remap_head(layer, old, new))
            setattr(model.config, f"{head}_labels", list(new))


def restrict_labels(frame: pd.DataFrame, label_sets: dict[str, list[str]]) -> pd.DataFrame:
    """Blank labels the new model no longer has; drop rows left with no label at all."""
    frame = frame.copy()
    for head in HEADS:
        frame[head] = [v if v in label_sets[head] else None for v in frame[head]]
    return frame[frame[list(HEADS)].notna().any(axis=1)].reset_index(drop=True)


def split_new(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if len(frame) < 5 or fraction <= 0:
        return frame, frame.iloc[0:0]
    strata = choose_strata(frame, fraction)
    train, holdout = train_test_split(frame, test_size=fraction, random_state=seed,
                                      stratify=strata)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def original_splits(
    paths: list[str], label_sets: dict[str, list[str]]
) -> dict[str, pd.DataFrame]:
    frames = []
    for path in paths:
        frame = load_checked(path, ColumnNames(), label_sets_for_old(path))
        frame = with_source(restrict_labels(frame, label_sets), path)
        if "split" not in frame.columns:
            raise DataError(f"{path}: replay data needs a split column (train/validation/test)")
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    return {name: frame[frame["split"] == name].reset_index(drop=True)
            for name in ("train", "validation", "test")}


def label_sets_for_old(path: str) -> dict[str, list[str]]:
    """Replay data is checked against its own label vocabulary (whatever it holds)."""
    frame = load_labelled(path)
    return {h: sorted(frame[h].dropna().unique().tolist()) for h in HEADS}


def compare(old: Classifier, new: Classifier, frame: pd.DataFrame) -> dict:
    """Accuracy and macro-F1 of the old and the new model on the same rows."""
    if frame.empty:
        return {}
    out: dict = {}
    for name, clf in (("before", old), ("after", new)):
        stance, sentiment = clf.predict_proba(frame["text"].tolist())
        out[name] = {}
        for head, probs in zip(HEADS, (stance, sentiment), strict=True):
            labels = clf.config.labels_of(head)
            pred = [labels[i] for i in probs.argmax(axis=1)]
            scores = head_scores(frame[head].tolist(), pred, new.config.labels_of(head))
            if scores:
                out[name][head] = scores
    return out


def retrain(args: RetrainArguments, log=print) -> dict:
    """Run the whole retraining; returns the summary (also written to training_summary.json)."""
    output = resolve_output(args)
    old = Classifier.load(args.from_model, allow_pickle=args.allow_pickle)
    columns = ColumnNames(text=args.text_column, stance=args.stance_column,
                          sentiment=args.sentiment_column)
    labelled = load_labelled(args.data, columns)
    new_rows, file_rows = deduplicate_latest(labelled)
    n_dups = len(labelled) - len(new_rows)
    if n_dups:
        log(f"{n_dups} earlier label(s) of a repeated statement replaced by the latest one")
    label_sets = {
        "stance": label_plan(old.stance_labels, new_rows["stance"], args.stance_labels),
        "sentiment": label_plan(old.sentiment_labels, new_rows["sentiment"],
                                args.sentiment_labels),
    }
    report = validate(new_rows, args.data, label_sets=label_sets)
    for problem in report.problems:  # row numbers of the file, not of the deduplicated rows
        problem.rows = [file_rows[row - 1] for row in problem.rows]
    if not report.ok:
        raise DataError(report.render())
    for head in HEADS:
        log(describe_mapping(head, old.config.labels_of(head), label_sets[head]))
    new_train, new_holdout = split_new(new_rows, args.holdout_fraction, args.seed)
    replay = [args.replay_data] if args.replay_data else [str(p) for p in replay_data_files()]
    original = original_splits(replay, label_sets)
    n_replay = min(len(original["train"]), math.ceil(args.replay_ratio * len(new_train)))
    replayed = original["train"].sample(n=n_replay, random_state=args.seed)
    log(f"training on {len(new_train)} new + {n_replay} replayed rows; "
        f"{len(new_holdout)} new rows held out")

    model, tokenizer = load_model(args.from_model, allow_pickle=args.allow_pickle)
    apply_label_sets(model, label_sets)
    # No warm-up: the model is already fine-tuned, and with a handful of new rows a warm-up
    # would spend the only optimiser steps at a learning rate near zero.
    train_args = TrainArguments(
        warmup_ratio=0.0,
        output=str(output), epochs=args.epochs, learning_rate=args.learning_rate,
        batch_size=args.batch_size, seed=args.seed, max_seq_length=model.config.max_seq_length,
        early_stopping_patience=args.early_stopping_patience, force=True,
        select_backend=args.select_backend, data=replay,
        select_sources=[s for s in REAL_SOURCES if s in set(original["validation"]["source"])],
    )
    splits = DataSplits(
        train=pd.concat([new_train, replayed], ignore_index=True),
        validation=original["validation"],
        test=original["test"] if not original["test"].empty else None,
    )
    model.train()
    if not fit(model, tokenizer, splits, train_args, output, log=log):
        return {}
    metrics = finish(model, tokenizer, splits, train_args, output, args.data)
    shutil.rmtree(checkpoint_dir_of(train_args, output), ignore_errors=True)
    new = Classifier.load(output)
    summary = {
        "label_sets": label_sets,
        "rows": {"new_train": len(new_train), "new_holdout": len(new_holdout),
                 "replayed": n_replay},
        "original_test": compare(old, new, original["test"]),
        "new_holdout": compare(old, new, new_holdout),
    }
    metrics["retrain"] = summary
    if train_args.select_backend:
        log("choosing the scoring backend on the validation split ...")
        metrics["backend_selection"] = choose_scoring_backend(
            output, selection_rows(splits.validation, train_args))
    (output / "training_summary.json").write_text(json.dumps(metrics, indent=2))
    return {**summary, "backend_selection": metrics.get("backend_selection")}


def format_comparison(summary: dict) -> str:
    rows = [("data", "head", "before acc", "after acc", "before F1", "after F1")]
    for name in ("original_test", "new_holdout"):
        part = summary.get(name, {})
        for head in HEADS:
            b, a = part.get("before", {}).get(head), part.get("after", {}).get(head)
            if a and b:
                rows.append((name, head, f"{b['accuracy']:.3f}", f"{a['accuracy']:.3f}",
                             f"{b['macro_f1']:.3f}", f"{a['macro_f1']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
