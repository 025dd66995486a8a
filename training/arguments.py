"""The arguments of ``detente train``, ``evaluate``, ``retrain`` and ``data check``.

One dataclass per command, each field with its default and its help text (field metadata):
the command line is built from these (``serve.option_parsing``), and Python callers pass the
same dataclasses, so a default lives in exactly one place. Fields several commands share
(the column names, ``allow_pickle``) are made by one function each below, for the same
reason. ``TrainArguments`` can also be read from a YAML/JSON file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

ALLOW_PICKLE_HELP = ("Also load pickled weights (pytorch_model.bin), which can run arbitrary "
                     "code: only for a model from a source you trust.")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


def text_column_field() -> Any:
    """The statement column: the same default and help in every command that reads rows."""
    return field(default="text", metadata=_help("Column holding the statement."))


def stance_column_field() -> Any:
    return field(default="stance", metadata=_help("Column holding the stance label."))


def sentiment_column_field() -> Any:
    return field(default="sentiment", metadata=_help("Column holding the sentiment label."))


def allow_pickle_field() -> Any:
    """Off unless asked: a pickled model file can run code when it loads."""
    return field(default=False, metadata=_help(ALLOW_PICKLE_HELP))


@dataclass
class TrainArguments:
    """Everything a training run needs; defaults rebuild the default model from data/."""

    data: list[str] = field(default_factory=list, metadata=_help(
        "Labelled data: one or more files (CSV, TSV, JSONL, Parquet or saved HF dataset "
        "folders). Each is split by its own split column (train/validation/test; test_<name> "
        "rows are only evaluated) or by --validation-fraction. Optional columns: source "
        "(metrics per source), weight (scales a row's loss), sentiment_shares (JSONL/Parquet: "
        "{negative, neutral, positive} shares, e.g. of raters, a graded sentiment target). "
        "Default: the bundled data listed in data/README.md."))
    select_sources: list[str] = field(default_factory=list, metadata=_help(
        "Only validation rows of these sources choose the epoch, the temperatures and the "
        "scoring backend. Default: every validation row; with the bundled data, the real "
        "statements (ungdc, wh_briefings, wikinews)."))
    validation_data: str | None = field(default=None, metadata=_help(
        "Separate validation file. Default: rows with split=validation in --data, or a "
        "stratified hold-out of --validation-fraction."))
    test_data: str | None = field(default=None, metadata=_help(
        "Separate test file for the model card. Default: rows with split=test in --data."))
    extra_data: list[str] = field(default_factory=list, metadata=_help(
        "Extra training files mixed in, e.g. sentiment-only rows "
        "(../shared/data/newsmtsc/train.jsonl). Their split column is ignored."))
    extra_data_max_rows: int | None = field(default=None, metadata=_help(
        "Use at most this many rows of each --extra-data file (a random sample)."))
    text_column: str = text_column_field()
    stance_column: str = stance_column_field()
    sentiment_column: str = sentiment_column_field()
    split_column: str = field(default="split", metadata=_help(
        "Column holding train/validation/test."))
    validation_fraction: float = field(default=0.15, metadata=_help(
        "Share of rows held out for validation when the data has no split column."))
    base_model: str | None = field(default=None, metadata=_help(
        "Base encoder: a local folder or a Hub id. Default: the packaged all-MiniLM-L6-v2."))
    allow_pickle: bool = field(default=False, metadata=_help(
        "Let --base-model load pickled weights (pytorch_model.bin), which can run code; "
        "only for a source you trust. Without it only safetensors weights load."))
    output: str | None = field(default=None, metadata=_help(
        "Where to write the trained model. Default: the default model folder "
        "($DETENTE_HOME/models/default)."))
    force: bool = field(default=False, metadata=_help("Overwrite an existing model in --output."))
    epochs: float = field(default=3.0, metadata=_help(
        "Maximum number of epochs (the bundled data: 3, about 250 steps each)."))
    learning_rate: float = field(default=8e-5, metadata=_help("Peak learning rate (AdamW)."))
    batch_size: int = field(default=32, metadata=_help("Training batch size per device."))
    max_seq_length: int = field(default=128, metadata=_help(
        "Tokens per statement; longer ones are truncated in training."))
    warmup_ratio: float = field(default=0.1, metadata=_help("Share of steps for LR warm-up."))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay."))
    seed: int = field(default=42, metadata=_help(
        "Random seed; the same seed gives the same model on CPU."))
    stance_metric_weight: float = field(default=0.5, metadata=_help(
        "Weight of stance macro-F1 in the early-stopping score (sentiment gets 1 minus this)."))
    class_weighting: str = field(default="balanced", metadata=_help(
        "'balanced' weights each class's loss by inverse frequency; 'none' does not."))
    early_stopping_patience: int = field(default=2, metadata=_help(
        "Stop after this many evaluations without improvement."))
    calibrate: bool = field(default=True, metadata=_help(
        "Fit one temperature per head on the validation split."))
    checkpoint_dir: str | None = field(default=None, metadata=_help(
        "Where checkpoints go. Default: <output>.checkpoints next to the output folder."))
    resume: bool = field(default=False, metadata=_help(
        "Resume from the last checkpoint in --checkpoint-dir."))
    select_backend: bool = field(default=True, metadata=_help(
        "After saving, choose the backend `detente score --backend auto` runs for this "
        "model, on the validation split: the fastest of ONNX fp32 and int8 variants that "
        "keeps >= 99 percent of torch's stance labels and loses <= 0.5 macro-F1 points "
        "(30-60 s on 2 CPU cores for MiniLM). Without it auto runs ONNX fp32."))
    config: str | None = field(default=None, metadata=_help(
        "A YAML or JSON file of these arguments; command-line flags override it."))

    def __post_init__(self) -> None:
        if isinstance(self.data, str | Path):  # one file, as in configs before --data took several
            self.data = [str(self.data)]
        if not 0.0 <= self.stance_metric_weight <= 1.0:
            raise ValueError("stance_metric_weight must be in [0, 1]")
        if self.class_weighting not in ("balanced", "none"):
            raise ValueError("class_weighting must be 'balanced' or 'none'")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be between 0 and 1")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainArguments:
        """Arguments from a YAML/JSON file, then ``overrides`` on top (CLI flags win)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                values = yaml.safe_load(text) or {}
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" at line {mark.line + 1}" if mark is not None else ""
                raise ValueError(f"{path} is not valid YAML{where}: "
                                 f"{getattr(err, 'problem', None) or err}") from err
        else:
            try:
                values = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON: {err}") from err
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a mapping of argument names to values")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown argument(s) {unknown}; known: {sorted(known)}")
        for name, kind in (("epochs", float), ("learning_rate", float), ("batch_size", int),
                           ("max_seq_length", int), ("seed", int)):
            if name in values and not isinstance(values[name], kind | int):
                try:
                    values[name] = kind(values[name])
                except (TypeError, ValueError):
                    raise ValueError(f"{path}: {name} must be a number, "
                                     f"got {values[name]!r}") from None
        values.update(overrides)
        values["config"] = str(path)
        return cls(**values)


@dataclass
class EvaluateArguments:
    """What ``detente evaluate`` measures and where the report goes.

    The defaults measure the default model on the test split of the bundled real statements,
    the numbers the model card reports.
    """

    model: str | None = field(default=None, metadata=_help(
        "Model folder. Default: the default model."))
    data: str | None = field(default=None, metadata=_help(
        "Labelled file. Default: the bundled real statements; metrics per source when the "
        "file has a source column."))
    report: str = field(default="report", metadata=_help(
        "Folder for metrics.json, report.md and plots."))
    split: str | None = field(default="test", metadata=_help(
        "Split to use when the file has a split column ('all' for every row)."))
    train_data: str | None = field(default=None, metadata=_help(
        "Training rows for the baselines. Default: the train splits of the bundled written "
        "corpus and real statements."))
    text_column: str = text_column_field()
    stance_column: str = stance_column_field()
    sentiment_column: str = sentiment_column_field()
    batch_size: int = field(default=64, metadata=_help("Statements per forward pass."))
    n_errors: int = field(default=20, metadata=_help(
        "Most confident errors listed in the report."))
    allow_pickle: bool = allow_pickle_field()


@dataclass
class RetrainArguments:
    """How ``detente retrain`` continues a fine-tuned model on new rows.

    Its defaults differ from ``TrainArguments`` on purpose: a lower learning rate and less
    patience, because the model already knows the task and a few new rows overfit fast.
    """

    from_model: str = field(metadata=_help(
        "The fine-tuned model folder to continue from.", aliases=["--from"]))
    data: str = field(metadata=_help(
        "Newly labelled rows (e.g. the demo's corrections.jsonl)."))
    output: str | None = field(default=None, metadata=_help(
        "Folder for the new model. Required unless --force (then --from is overwritten)."))
    force: bool = field(default=False, metadata=_help(
        "Allow overwriting an existing model (with no --output: --from)."))
    replay_data: str | None = field(default=None, metadata=_help(
        "Original training data to replay. Default: the bundled written corpus and real "
        "statements, the files of the default model that carry both labels."))
    replay_ratio: float = field(default=2.0, metadata=_help(
        "Replayed original rows per new training row."))
    holdout_fraction: float = field(default=0.2, metadata=_help(
        "Share of the new rows held out to measure the gain."))
    stance_labels: list[str] | None = field(default=None, metadata=_help(
        "The new model's stance labels, comma-separated. Default: the old ones plus any new "
        "in --data."))
    sentiment_labels: list[str] | None = field(default=None, metadata=_help(
        "The new model's sentiment labels, comma-separated. Default: old plus new."))
    epochs: float = field(default=3.0, metadata=_help("Maximum epochs."))
    learning_rate: float = field(default=3e-5, metadata=_help("Peak learning rate (AdamW)."))
    batch_size: int = field(default=32, metadata=_help("Training batch size per device."))
    seed: int = field(default=42, metadata=_help("Random seed."))
    early_stopping_patience: int = field(default=1, metadata=_help(
        "Stop after this many evaluations without improvement."))
    text_column: str = text_column_field()
    stance_column: str = stance_column_field()
    sentiment_column: str = sentiment_column_field()
    allow_pickle: bool = allow_pickle_field()
    select_backend: bool = field(default=True, metadata=_help(
        "After saving, choose what `detente score --backend auto` runs for the new model, "
        "on the replayed data's validation split (30-60 s)."))

    def __post_init__(self) -> None:
        # "a,b,c" on the command line and ["a", "b", "c"] from Python mean the same labels.
        self.stance_labels = _split_labels(self.stance_labels)
        self.sentiment_labels = _split_labels(self.sentiment_labels)


def _split_labels(labels: list[str] | str | None) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        labels = [labels]
    split = [part.strip() for label in labels for part in label.split(",") if part.strip()]
    return split or None


@dataclass
class DataCheckArguments:
    """Which file ``detente data check`` validates, and how strictly."""

    file: str = field(metadata=_help("Labelled file (CSV, TSV, JSONL, Parquet)."))
    text_column: str = text_column_field()
    stance_column: str = stance_column_field()
    sentiment_column: str = sentiment_column_field()
    corpus: bool = field(default=False, metadata=_help(
        "Also require every column of the project's corpus format (id, dispute, split, ...)."))
