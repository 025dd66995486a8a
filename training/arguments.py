"""The arguments of ``detente train``: one dataclass, readable from the CLI or a YAML/JSON file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


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
    text_column: str = field(default="text", metadata=_help("Column holding the statement."))
    stance_column: str = field(default="stance", metadata=_help("Column holding the stance label."))
    sentiment_column: str = field(default="sentiment", metadata=_help(
        "Column holding the sentiment label."))
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
            import yaml

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
