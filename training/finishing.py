"""After the Trainer: what the selection rows choose, what the model scores, what is saved.

The Trainer picks the epoch on the selection rows (``selection_rows``: the validation rows
of the real sources by default). Then ``finish`` fits the temperatures on the same rows,
measures every split per source beside the baselines and writes the model folder with its
card, and ``choose_scoring_backend`` picks what ``detente score --backend auto`` runs.
Apart from the training run because ``detente retrain`` finishes its model the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from transformers import PreTrainedTokenizerBase

from model.classifier import Classifier
from model.labels import HEADS
from model.modeling import DetenteModel
from training.arguments import TrainArguments
from training.backend_selection import select_backend
from training.baselines import Baselines
from training.bundled_data import REAL_SOURCES, data_fingerprint
from training.calibration import calibration_report, fit_temperature
from training.evaluation import metrics_by_source
from training.metrics import encode_labels, head_scores
from training.output import write_atomically
from training.splits import DataSplits


def selection_sources(args: TrainArguments) -> list[str]:
    """The sources whose validation rows choose the model (empty: every row)."""
    if args.select_sources:
        return list(args.select_sources)
    return list(REAL_SOURCES) if not args.data else []


def selection_rows(validation: pd.DataFrame, args: TrainArguments) -> pd.DataFrame:
    """The validation rows that choose the epoch, the temperatures and the backend."""
    sources = selection_sources(args)
    if not sources or "source" not in validation.columns:
        return validation
    rows = validation[validation["source"].isin(sources)].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"no validation rows from the sources {sources} (--select-sources); "
                         f"sources present: {sorted(validation['source'].dropna().unique())}")
    return rows


def finish(
    model: DetenteModel,
    tokenizer: PreTrainedTokenizerBase,
    splits: DataSplits,
    args: TrainArguments,
    output: Path,
    data_paths: Sequence[str] | str,
) -> dict:
    """Calibrate on the selection rows, measure every split per source, save with a card."""
    model.eval()
    classifier = Classifier.from_model(model, tokenizer)
    paths = [data_paths] if isinstance(data_paths, str | Path) else list(data_paths)
    selection = selection_rows(splits.validation, args)
    metrics: dict = {
        "arguments": asdict(args), "data": [str(p) for p in paths],
        "data_fingerprint": data_fingerprint([Path(p) for p in paths]),
        "selection_sources": selection_sources(args),
        "rows": {"train": len(splits.train), "validation": len(splits.validation),
                 "test": 0 if splits.test is None else len(splits.test),
                 **{name: len(rows) for name, rows in splits.held_out.items()}},
    }
    logits_by_head = classifier.predict_logits(selection["text"].tolist())
    calibration = {}
    for head, logits in zip(HEADS, logits_by_head, strict=True):
        gold = encode_labels(selection[head].tolist(), model.config.labels_of(head))
        temperature = fit_temperature(logits, gold) if args.calibrate else 1.0
        setattr(model.config, f"{head}_temperature", temperature)
        calibration[head] = calibration_report(logits, gold, temperature)
    metrics["calibration"] = calibration
    metrics["validation"] = split_metrics(classifier, selection)
    if splits.test is not None:
        metrics["test"] = split_metrics(classifier, splits.test)
    baselines = Baselines(splits.train)
    metrics["by_source"] = {
        name: metrics_by_source(classifier, rows, baselines, selection_sources(args))
        for name, rows in splits.evaluation_sets().items()
    }
    write_atomically(model, tokenizer, output, metrics, paths)
    return metrics


def choose_scoring_backend(output: Path, validation: pd.DataFrame | None) -> dict | None:
    """Pick what ``detente score --backend auto`` runs for the saved model, on validation.

    See ``training.backend_selection.select_backend``: export, int8 candidates, agreement
    with torch,
    macro-F1 change and speed on the validation statements (never the test split); the
    choice is written next to the model, keyed to its weights. The model is already saved,
    so a failure here is reported and leaves ``auto`` at ONNX fp32 instead of failing the run.
    """
    if validation is None or validation.empty:
        return None
    try:
        selection = select_backend(
            output, validation["text"].tolist(), validation["stance"].tolist(),
            sentiment_gold=validation["sentiment"].tolist(), source="validation split",
        )
    except Exception as err:  # an optimisation: the trained model stands without it
        return {"error": f"{type(err).__name__}: {err}"}
    return {k: v for k, v in selection.items() if k != "int8_error_ranking"}


def split_metrics(classifier: Classifier, frame: pd.DataFrame) -> dict:
    """Each head's accuracy and macro-F1 on ``frame`` (``training.metrics``' definitions)."""
    probs_by_head = classifier.predict_proba(frame["text"].tolist())
    out = {}
    for head, probs in zip(HEADS, probs_by_head, strict=True):
        labels = classifier.config.labels_of(head)
        predicted = [labels[i] for i in probs.argmax(axis=1)]
        out[head] = head_scores(frame[head].tolist(), predicted, labels)
    return out
