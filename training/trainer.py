"""``detente train``: fine-tune the two-headed model with the Hugging Face Trainer.

Using the stock Trainer (rather than a hand-written loop) is what gives users checkpoints,
``--resume``, mixed precision and multi-GPU DDP under ``torchrun``/``accelerate launch``
with no code of ours.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    TrainingArguments,
    set_seed,
)

from model.labels import HEADS, SENTIMENT_LABELS, STANCE_LABELS
from model.modeling import DetenteModel
from model.paths import default_base_model
from training.arguments import TrainArguments
from training.bundled_data import default_data_files
from training.data import ColumnNames
from training.features import balanced_class_weights, to_dataset
from training.finishing import choose_scoring_backend, finish, selection_rows
from training.metrics import combined_score, logit_scores
from training.output import (
    CheckpointingTrainer,
    checkpoint_dir_of,
    last_complete_checkpoint,
    resolve_output,
)
from training.splits import DataSplits, load_splits
from training.summary import format_summary


@dataclass
class TrainResult:
    output: Path
    metrics: dict
    seconds: float


def make_compute_metrics(stance_weight: float) -> Callable[..., dict[str, float]]:
    """The Trainer's scores of each epoch on the selection rows: every head's accuracy and
    macro-F1 (``training.metrics``), and ``macro_f1``, their weighted mean, which chooses the
    epoch kept."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        metrics: dict[str, float] = {}
        f1: dict[str, float | None] = {}
        for head, logits, gold in zip(HEADS, eval_pred.predictions[:2], eval_pred.label_ids,
                                      strict=True):
            scores = logit_scores(logits, gold)
            metrics.update({f"{head}_{k}": v for k, v in scores.items() if k != "n"})
            f1[head] = scores.get("macro_f1")
        metrics["macro_f1"] = combined_score(f1["stance"], f1["sentiment"], stance_weight)
        return metrics

    return compute_metrics


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
    if args.base_model is None:  # the card names the Hub id, not this machine's package path
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
    label_sets = dict(zip(HEADS, (STANCE_LABELS, SENTIMENT_LABELS), strict=True))
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
            head: balanced_class_weights(splits.train[head], config.labels_of(head))
            for head in HEADS
        }
    checkpoint_dir = checkpoint_dir_of(args, output)
    trainer = CheckpointingTrainer(
        model=model,
        args=hf_training_arguments(args, checkpoint_dir),
        train_dataset=to_dataset(splits.train, tokenizer, config),
        eval_dataset=to_dataset(selection_rows(splits.validation, args), tokenizer, config),
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=make_compute_metrics(args.stance_metric_weight),
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


__all__ = ["TrainResult", "format_summary", "train"]
