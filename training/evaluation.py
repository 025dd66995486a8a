"""``detente evaluate``: a model's quality on a labelled file, beside baselines, as a report.

Writes ``metrics.json``, ``report.md`` and PNG figures into the report folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from model.classifier import Classifier
from model.errors import DataError
from model.labels import HEADS
from model.probabilities import sentiment_score
from training.arguments import EvaluateArguments
from training.baselines import Baselines, vader_compound
from training.bundled_data import replay_data_files, selection_data_file
from training.data import ColumnNames
from training.metrics import (
    expected_calibration_error,
    head_scores,
    per_class_scores,
    rank_correlation,
)
from training.plots import confusion_matrix_png, reliability_png
from training.report import render_report
from training.splits import load_checked

SELECTED_GROUP = "selected_sources"  # the selection sources together (the real statements)
SENTIMENT_VALUE = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}


def head_metrics(gold: Sequence[str | None], pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1 over the labelled rows (the
    definitions of ``training.metrics``, shared with training and the model card)."""
    scores = head_scores(gold, pred, labels)
    if scores:
        scores["per_class"] = per_class_scores(gold, pred, labels)
    return scores


def spearman(scores: Sequence[float], gold: Sequence[str | None]) -> float | None:
    pairs = [(s, SENTIMENT_VALUE[g]) for s, g in zip(scores, gold) if g in SENTIMENT_VALUE]
    return rank_correlation([p[0] for p in pairs], [p[1] for p in pairs])


def select_rows(frame: pd.DataFrame, split: str | None) -> pd.DataFrame:
    if split and split != "all" and "split" in frame.columns and frame["split"].notna().any():
        rows = frame[frame["split"] == split]
        if rows.empty:
            raise DataError(f"no rows with split={split!r}; pass --split all to use every row")
        return rows.reset_index(drop=True)
    return frame.reset_index(drop=True)


def baseline_training_rows(args: EvaluateArguments, label_sets: dict) -> pd.DataFrame:
    paths = [args.train_data] if args.train_data else [str(p) for p in replay_data_files()]
    frames = []
    for path in paths:
        frame = load_checked(path, ColumnNames(), label_sets)
        if "split" in frame.columns and frame["split"].notna().any():
            frame = frame[frame["split"] == "train"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def evaluate_frame(
    classifier: Classifier,
    frame: pd.DataFrame,
    train_rows: pd.DataFrame | Baselines | None,
    batch_size: int,
) -> tuple[dict, dict]:
    """Metrics for the model and the baselines, plus the raw arrays the report needs."""
    texts = frame["text"].tolist()
    stance_probs, sentiment_probs = classifier.predict_proba(texts, batch_size=batch_size)
    arrays = {"stance": stance_probs, "sentiment": sentiment_probs}
    metrics: dict = {"rows": len(frame)}
    for head, probs in arrays.items():
        labels = classifier.config.labels_of(head)
        pred = [labels[i] for i in probs.argmax(axis=1)]
        gold = frame[head].tolist()
        metrics[head] = head_metrics(gold, pred, labels)
        keep = np.array([g in labels for g in gold])
        if keep.any():
            gold_index = np.array([labels.index(g) for g in np.array(gold, dtype=object)[keep]])
            metrics[head]["ece"] = expected_calibration_error(probs[keep], gold_index)
    scores = sentiment_score(sentiment_probs, classifier.sentiment_labels)
    if metrics["sentiment"]:
        metrics["sentiment"]["spearman"] = spearman(scores, frame["sentiment"].tolist())
    if "mean_rating" in frame.columns and frame["mean_rating"].notna().sum() >= 3:
        metrics["rated"] = rating_correlations(frame, scores)
    if train_rows is not None:
        metrics["baselines"] = score_baselines(train_rows, frame, classifier)
    return metrics, {**arrays, "sentiment_score": scores}


def rating_correlations(frame: pd.DataFrame, scores: np.ndarray) -> dict:
    """Spearman of the model's sentiment_score and of VADER's compound with the mean human
    rating, on the rows that have one (a graded check that three-way labels would blur)."""
    keep = frame["mean_rating"].notna().to_numpy()
    rating = frame["mean_rating"].to_numpy(dtype=float)[keep]
    texts = frame["text"][keep].tolist()
    return {"n": int(keep.sum()), "model_spearman": rank_correlation(scores[keep], rating),
            "vader_spearman": rank_correlation(vader_compound(texts), rating)}


def metrics_by_source(
    classifier: Classifier, frame: pd.DataFrame, baselines: Baselines,
    selected_sources: Sequence[str] = (), batch_size: int = 64,
) -> dict[str, dict]:
    """The model's and the baselines' scores on each source's rows of one split, and on the
    selection sources together (``SELECTED_GROUP``: the real statements, by default)."""
    if "source" not in frame.columns:
        frame = frame.assign(source="all")
    groups = {str(source): rows for source, rows in frame.groupby("source", sort=True)}
    selected = frame[frame["source"].isin(selected_sources)]
    if len(selected_sources) > 1 and not selected.empty:
        groups[SELECTED_GROUP] = selected
    return {name: evaluate_frame(classifier, rows.reset_index(drop=True), baselines, batch_size)[0]
            for name, rows in groups.items()}


def score_baselines(
    train_rows: pd.DataFrame | Baselines, frame: pd.DataFrame, clf: Classifier
) -> dict:
    texts = frame["text"].tolist()
    baselines = train_rows if isinstance(train_rows, Baselines) else Baselines(train_rows)
    out: dict = {}
    for name, heads in baselines.predict(texts).items():
        out[name] = {}
        for head, pred in heads.items():
            scores = head_scores(frame[head].tolist(), pred, clf.config.labels_of(head))
            if scores:
                out[name][head] = {k: scores[k] for k in ("accuracy", "macro_f1")}
    if out.get("vader", {}).get("sentiment"):
        out["vader"]["sentiment"]["spearman"] = spearman(
            vader_compound(texts), frame["sentiment"].tolist()
        )
    return out


def confident_errors(
    frame: pd.DataFrame, arrays: dict, classifier: Classifier, n: int
) -> list[dict]:
    """The wrong predictions the model was surest of: where to look for label or model issues."""
    errors = []
    for head in HEADS:
        labels = classifier.config.labels_of(head)
        probs = arrays[head]
        for i, gold in enumerate(frame[head].tolist()):
            pred = labels[int(probs[i].argmax())]
            if gold is not None and pred != gold:
                errors.append({"head": head, "text": frame["text"].iloc[i], "gold": gold,
                               "predicted": pred, "confidence": float(probs[i].max())})
    return sorted(errors, key=lambda e: -e["confidence"])[:n]


def evaluate(args: EvaluateArguments) -> dict:
    """Run the evaluation and write the report folder; returns the metrics."""
    classifier = Classifier.load(args.model, allow_pickle=args.allow_pickle)
    label_sets = {"stance": classifier.stance_labels, "sentiment": classifier.sentiment_labels}
    columns = ColumnNames(text=args.text_column, stance=args.stance_column,
                          sentiment=args.sentiment_column)
    data = args.data or str(selection_data_file())
    frame = select_rows(load_checked(data, columns, label_sets), args.split)
    train_rows = baseline_training_rows(args, label_sets)
    baselines = Baselines(train_rows)
    metrics, arrays = evaluate_frame(classifier, frame, baselines, args.batch_size)
    if "source" in frame.columns and frame["source"].nunique() > 1:
        metrics["by_source"] = metrics_by_source(classifier, frame, baselines,
                                                 batch_size=args.batch_size)
    metrics.update(model=str(classifier.path), model_version=classifier.model_version,
                   data=data, split=args.split)
    errors = confident_errors(frame, arrays, classifier, args.n_errors)
    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    figures = write_figures(report, frame, arrays, classifier)
    (report / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (report / "errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in errors))
    (report / "report.md").write_text(render_report(metrics, figures, errors), encoding="utf-8")
    return metrics


def write_figures(report: Path, frame: pd.DataFrame, arrays: dict, clf: Classifier) -> list[str]:
    names = []
    for head in HEADS:
        labels = clf.config.labels_of(head)
        keep = [g in labels for g in frame[head]]
        if not any(keep):
            continue
        gold = [g for g, k in zip(frame[head], keep) if k]
        probs = arrays[head][np.array(keep)]
        pred = [labels[i] for i in probs.argmax(axis=1)]
        cm = confusion_matrix_png(gold, pred, labels, f"{head}: confusion matrix",
                                  report / f"confusion_{head}.png")
        gold_index = np.array([labels.index(g) for g in gold])
        rel = reliability_png(probs, gold_index, f"{head}: reliability",
                              report / f"reliability_{head}.png")
        names += [cm.name, rel.name]
    return names
