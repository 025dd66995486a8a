"""``detente train``: fine-tune the two-headed model with the Hugging Face Trainer.

Using the stock Trainer (rather than a hand-written loop) is what gives users checkpoints,
``--resume``, mixed precision and multi-GPU DDP under ``torchrun``/``accelerate launch``
with no code of ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from datasets import Dataset
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

from model.classifier import Classifier
from model.config import DetenteConfig
from model.errors import ModelWriteError, one_line
from model.labels import SENTIMENT_LABELS, STANCE_LABELS
from model.modeling import DetenteModel
from model.paths import default_base_model, default_model_dir
from model.persistence import WRITE_ERRORS, save_model
from training.arguments import TrainArguments
from training.baselines import Baselines
from training.bundled_data import REAL_SOURCES, data_fingerprint, default_data_files
from training.calibration import calibration_report, fit_temperature
from training.data import ColumnNames
from training.evaluation import metrics_by_source
from training.metrics import combined_score, encode_labels, head_scores, logit_scores
from training.model_card import write_model_card
from training.splits import DataSplits, load_splits


@dataclass
class TrainResult:
    output: Path
    metrics: dict
    seconds: float


def to_dataset(
    frame: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, config: DetenteConfig
) -> Dataset:
    """Tokenised rows with integer labels (-100 where a head has no label), the graded
    sentiment targets (zeros where a row has none) and the row weights (1 unless given)."""
    encoded = tokenizer(
        frame["text"].tolist(), truncation=True, max_length=config.max_seq_length
    )
    columns = {key: list(values) for key, values in encoded.items()}
    columns["stance_labels"] = encode_labels(frame["stance"].tolist(), config.stance_labels)
    columns["sentiment_labels"] = encode_labels(
        frame["sentiment"].tolist(), config.sentiment_labels
    )
    columns["sentiment_soft_labels"] = soft_targets(frame, config.sentiment_labels)
    columns["row_weights"] = row_weights(frame)
    columns["length"] = [len(ids) for ids in encoded["input_ids"]]
    return Dataset.from_dict(columns)


def soft_targets(frame: pd.DataFrame, labels: Sequence[str]) -> list[list[float]]:
    """``sentiment_shares`` ({label: share}) as vectors in the head's label order."""
    if "sentiment_shares" not in frame.columns:
        return [[0.0] * len(labels)] * len(frame)
    out = []
    for row, shares in enumerate(frame["sentiment_shares"].tolist(), start=1):
        if not isinstance(shares, dict):
            out.append([0.0] * len(labels))
            continue
        unknown = set(shares) - set(labels)
        if unknown:
            raise ValueError(f"row {row}: sentiment_shares has unknown labels {sorted(unknown)}; "
                             f"allowed: {list(labels)}")
        out.append([float(shares.get(label) or 0.0) for label in labels])
    return out


def row_weights(frame: pd.DataFrame) -> list[float]:
    if "weight" not in frame.columns:
        return [1.0] * len(frame)
    weights = pd.to_numeric(frame["weight"], errors="coerce").fillna(1.0)
    return [float(w) for w in weights]


def balanced_class_weights(values: pd.Series, labels: Sequence[str]) -> torch.Tensor | None:
    """Inverse-frequency weights (sklearn's 'balanced'); classes absent from data get 1."""
    counts = values.dropna().value_counts()
    if counts.empty:
        return None
    total = counts.sum()
    weights = [
        total / (len(labels) * counts[label]) if label in counts else 1.0 for label in labels
    ]
    return torch.tensor(weights, dtype=torch.float32)


def make_compute_metrics(config: DetenteConfig, stance_weight: float):
    """The Trainer's scores of each epoch on the selection rows: every head's accuracy and
    macro-F1 (``training.metrics``), and ``macro_f1``, their weighted mean, which chooses the
    epoch kept."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        stance_logits, sentiment_logits = eval_pred.predictions[:2]
        stance_gold, sentiment_gold = eval_pred.label_ids
        stance = logit_scores(stance_logits, stance_gold)
        sentiment = logit_scores(sentiment_logits, sentiment_gold)
        metrics = {f"stance_{k}": v for k, v in stance.items() if k != "n"}
        metrics.update({f"sentiment_{k}": v for k, v in sentiment.items() if k != "n"})
        metrics["macro_f1"] = combined_score(
            stance.get("macro_f1"), sentiment.get("macro_f1"), stance_weight
        )
        return metrics

    return compute_metrics


def resolve_output(args: TrainArguments) -> Path:
    output = Path(args.output) if args.output else default_model_dir()
    if (output / "config.json").exists() and not args.force:
        raise FileExistsError(
            f"a model already exists in {output}; pass --force to overwrite it or choose "
            "another --output"
        )
    check_writable(output)
    check_writable(checkpoint_dir_of(args, output))
    return output


def checkpoint_dir_of(args: TrainArguments, output: Path) -> Path:
    return Path(args.checkpoint_dir or f"{output}.checkpoints")


def check_writable(folder: Path) -> None:
    """Fail before training, not after it, when ``folder`` cannot be created and written."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ModelWriteError(f"cannot write to {folder}: {existing} is a file, not a folder")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{folder.name}.probe.", dir=folder.parent))
    except OSError as err:
        raise ModelWriteError(
            f"cannot write to {folder}: {err.strerror or err} ({folder.parent})") from err


class CheckpointingTrainer(Trainer):
    """The stock Trainer, with a failed checkpoint write said in one line and cleaned up.

    Without this a full disk surfaces as a torch/safetensors traceback and leaves a partial
    ``checkpoint-N`` folder that ``--resume`` would then try (and fail) to load.
    """

    def _save_checkpoint(self, model, trial) -> None:
        try:
            super()._save_checkpoint(model, trial)
        except WRITE_ERRORS as err:
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # only when no earlier checkpoint is in it
                folder.parent.rmdir()
            raise ModelWriteError(
                f"could not write the checkpoint {folder} ({one_line(err)}); is the disk "
                "full? Earlier checkpoints are kept: free some space and rerun with --resume"
            ) from err


def last_complete_checkpoint(checkpoint_dir: Path, log: Callable[[str], None]) -> Path | None:
    """The newest ``checkpoint-N`` that was written to the end; partial ones are removed.

    The Trainer writes ``trainer_state.json`` last, so a checkpoint without a readable one
    was cut short (killed, disk full) and cannot be resumed from.
    """
    complete = []
    for folder in checkpoint_dir.glob("checkpoint-*"):
        try:
            json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
            complete.append((int(folder.name.rsplit("-", 1)[1]), folder))
        except (OSError, ValueError):
            log(f"removing the incomplete checkpoint {folder}")
            shutil.rmtree(folder, ignore_errors=True)
    return max(complete)[1] if complete else None


def build_model(args: TrainArguments) -> tuple[DetenteModel, PreTrainedTokenizerBase]:
    base = args.base_model or str(default_base_model())
    local = Path(base).exists()
    if local and not args.allow_pickle and not any(Path(base).glob("*.safetensors")) and any(
        Path(base).glob("*.bin")
    ):
        raise ValueError(
            f"base model {base} has only pickled weights (*.bin), which can run arbitrary code "
            "when loaded; convert them to safetensors, or pass --allow_pickle if you trust "
            "the source"
        )
    set_seed(args.seed)
    try:
        model = DetenteModel.from_base_encoder(
            base,
            local_files_only=local,
            allow_pickle=args.allow_pickle,
            stance_labels=STANCE_LABELS,
            sentiment_labels=SENTIMENT_LABELS,
            max_seq_length=args.max_seq_length,
        )
    except OSError as err:
        hint = "" if local else (
            " (a Hub id needs network access; unset HF_HUB_OFFLINE or pass a local folder)")
        raise ValueError(f"could not load base model {base!r}{hint}: {err}") from err
    if args.base_model is None:
        model.config.base_model = "sentence-transformers/all-MiniLM-L6-v2"
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=local)
    return model, tokenizer


def hf_training_arguments(args: TrainArguments, checkpoint_dir: Path) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        warmup_steps=args.warmup_ratio,
        weight_decay=args.weight_decay,
        seed=args.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        save_only_model=False,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_strategy="epoch",
        report_to="none",
        label_names=["stance_labels", "sentiment_labels"],
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        remove_unused_columns=True,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # use_cpu lets torchrun start CPU-only DDP (gloo) when there is no GPU
        use_cpu=not torch.cuda.is_available(),
    )


def train(args: TrainArguments) -> TrainResult:
    """Train, calibrate, score the test split and write the model folder with its card."""
    started = time.perf_counter()
    output = resolve_output(args)
    columns = ColumnNames(
        text=args.text_column, stance=args.stance_column,
        sentiment=args.sentiment_column, split=args.split_column,
    )
    label_sets = {"stance": STANCE_LABELS, "sentiment": SENTIMENT_LABELS}
    data_paths = args.data or [str(p) for p in default_data_files()]
    splits = load_splits(
        data_paths, columns=columns, label_sets=label_sets,
        validation_data=args.validation_data, test_data=args.test_data,
        extra_data=args.extra_data, validation_fraction=args.validation_fraction, seed=args.seed,
        extra_data_max_rows=args.extra_data_max_rows,
    )
    model, tokenizer = build_model(args)
    if not fit(model, tokenizer, splits, args, output):
        return TrainResult(output=output, metrics={}, seconds=time.perf_counter() - started)
    metrics = finish(model, tokenizer, splits, args, output, data_paths)
    # Only now that the model is safely written: until then they are what --resume needs.
    shutil.rmtree(checkpoint_dir_of(args, output), ignore_errors=True)
    if args.select_backend:
        metrics["backend_selection"] = choose_scoring_backend(
            output, selection_rows(splits.validation, args))
    seconds = time.perf_counter() - started
    metrics["train_seconds"] = round(seconds, 1)
    (output / "training_summary.json").write_text(json.dumps(metrics, indent=2))
    return TrainResult(output=output, metrics=metrics, seconds=seconds)


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


def fit(
    model: DetenteModel,
    tokenizer: PreTrainedTokenizerBase,
    splits: DataSplits,
    args: TrainArguments,
    output: Path,
    log: Callable[[str], None] = print,
) -> bool:
    """Run the HF Trainer with early stopping; the best checkpoint ends up in ``model``.

    Returns False on every process but the main one under DDP (torchrun / accelerate), so
    that exactly one process calibrates and writes the model folder. The checkpoints stay
    until the caller has written the model (``--resume`` needs them if that fails).
    """
    config = model.config
    if args.class_weighting == "balanced":
        model.loss_weights = {
            "stance": balanced_class_weights(splits.train["stance"], config.stance_labels),
            "sentiment": balanced_class_weights(splits.train["sentiment"], config.sentiment_labels),
        }
    checkpoint_dir = checkpoint_dir_of(args, output)
    trainer = CheckpointingTrainer(
        model=model,
        args=hf_training_arguments(args, checkpoint_dir),
        train_dataset=to_dataset(splits.train, tokenizer, config),
        eval_dataset=to_dataset(selection_rows(splits.validation, args), tokenizer, config),
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=make_compute_metrics(config, args.stance_metric_weight),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience)],
    )
    resume_from = None
    if args.resume:
        resume_from = last_complete_checkpoint(checkpoint_dir, log)
        log(f"resuming from {resume_from}" if resume_from else
            f"no complete checkpoint in {checkpoint_dir}; training from the start")
    elif stale := sorted(checkpoint_dir.glob("checkpoint-*")):
        # Left in place, they would mix with this run's: rotation and --resume go by number.
        log(f"removing {len(stale)} checkpoint(s) of an earlier run in {checkpoint_dir} "
            "(pass --resume to continue that run instead)")
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return trainer.is_world_process_zero()


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
    classifier = Classifier(model, tokenizer)
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
    stance_logits, sentiment_logits = classifier.predict_logits(selection["text"].tolist())
    calibration = {}
    for head, logits in (("stance", stance_logits), ("sentiment", sentiment_logits)):
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

    See ``serve.backends.select_backend``: export, int8 candidates, agreement with torch,
    macro-F1 change and speed on the validation statements (never the test split); the
    choice is written next to the model, keyed to its weights. The model is already saved,
    so a failure here is reported and leaves ``auto`` at ONNX fp32 instead of failing the run.
    """
    if validation is None or validation.empty:
        return None
    from serve.backends import select_backend

    try:
        selection = select_backend(
            output, validation["text"].tolist(), validation["stance"].tolist(),
            sentiment_gold=validation["sentiment"].tolist(), source="validation split",
        )
    except Exception as err:  # an optimisation: the trained model stands without it
        return {"error": f"{type(err).__name__}: {err}"}
    return {k: v for k, v in selection.items() if k != "int8_error_ranking"}


def split_metrics(classifier: Classifier, frame: pd.DataFrame) -> dict:
    stance_probs, sentiment_probs = classifier.predict_proba(frame["text"].tolist())
    out = {}
    for head, probs in (("stance", stance_probs), ("sentiment", sentiment_probs)):
        labels = classifier.config.labels_of(head)
        predicted = [labels[i] for i in probs.argmax(axis=1)]
        out[head] = head_scores(frame[head].tolist(), predicted, labels)
    return out


def write_atomically(
    model: DetenteModel,
    tokenizer: PreTrainedTokenizerBase,
    output: Path,
    metrics: dict,
    data_paths: Sequence[str],
) -> None:
    """Save into a temporary sibling folder, then swap it in: no half-written model folder."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    except OSError as err:
        raise ModelWriteError(f"could not write the model to {output}: {err}") from err
    try:
        save_model(model, tokenizer, staging)
        write_model_card(staging, model.config, metrics, data_paths)
        (staging / "training_summary.json").write_text(json.dumps(metrics, indent=2))
    except (ModelWriteError, *WRITE_ERRORS) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelWriteError(
            f"could not write the model to {output} ({one_line(err.__cause__ or err)}); "
            "nothing was written there. Free some space and run the command again "
            "(detente train --resume continues from the kept checkpoints)"
        ) from err
    if output.exists():
        old = output.with_name(f".{output.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        output.rename(old)
        staging.rename(output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(output)


def format_summary(metrics: dict) -> str:
    """A small table of the final numbers for the terminal."""
    rows = [("split", "head", "accuracy", "macro-F1")]
    for split in ("validation", "test"):
        for head, scores in metrics.get(split, {}).items():
            if scores:
                rows.append((split, head, f"{scores['accuracy']:.3f}", f"{scores['macro_f1']:.3f}"))
    for head, cal in metrics.get("calibration", {}).items():
        if cal:
            rows.append(("calibration", head, f"T={cal['temperature']:.2f}",
                         f"ECE {cal['ece_before']:.3f}->{cal['ece_after']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    selection = metrics.get("backend_selection")
    if selection:
        from serve.backends import describe_selection

        lines.append(f"backend selection failed ({selection['error']}); --backend auto runs "
                     "ONNX fp32" if "error" in selection else describe_selection(selection))
    return "\n".join(lines)


__all__ = ["TrainResult", "format_summary", "train"]
