"""Where a training run writes, and writing it safely: the model folder and the checkpoints.

Apart from the training run because every rule here is about failing well (a folder that
cannot be written is found before training, a full disk mid-checkpoint or mid-save leaves
nothing half-written), and ``detente retrain`` writes through the same rules.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from transformers import PreTrainedTokenizerBase, Trainer

from model.errors import ModelWriteError, one_line
from model.modeling import DetenteModel
from model.paths import default_model_dir
from model.persistence import WRITE_ERRORS, save_model
from training.arguments import TrainArguments
from training.model_card import write_model_card


def resolve_output(args: TrainArguments) -> Path:
    """The model folder of a run, refused when it holds a model and ``--force`` is not given."""
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
    """``--checkpoint_dir``, or a sibling of the model folder so one run's stay together."""
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
