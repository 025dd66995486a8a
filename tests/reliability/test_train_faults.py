"""Training under faults: killed mid-run then resumed, and writes that fail.

- ``detente train`` is killed with SIGKILL after its first checkpoint, beside a checkpoint
  that was cut short mid-save; ``--resume`` drops the partial one, continues from the last
  complete one (the epochs before it are not trained again) and writes a complete model.
- A write that fails (a file-size limit, which fails writes the way a full disk does) gives
  one clear error and leaves no model folder, no partial checkpoint and no staging folder;
  when the final save fails, a model already in the output folder is left as it was.
- An output folder that cannot be created fails before any training.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model.persistence import weights_hash
from tests.conftest import STATEMENTS, write_jsonl

REPO = Path(__file__).resolve().parents[2]
MODEL_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
               "README.md", "training_summary.json")


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}


def train_command(data: Path, encoder: Path, output: Path, epochs: int, *extra: str) -> list:
    return [sys.executable, "-m", "serve.cli", "train", "--data", str(data), "--base_model",
            str(encoder), "--output", str(output), "--epochs", str(epochs), "--batch_size", "8",
            "--max_seq_length", "32", "--early_stopping_patience", "100",
            "--select_backend", "false", *extra]


@pytest.fixture
def data(tmp_path) -> Path:
    rows = [{"id": f"r{copy}-{i}", "text": f"{text} (item {copy}-{i})", "stance": stance,
             "sentiment": sentiment}
            for copy in range(5) for i, (text, stance, sentiment) in enumerate(STATEMENTS)]
    return write_jsonl(tmp_path / "data.jsonl", rows)


def complete_checkpoints(folder: Path) -> list[Path]:
    done = []
    for checkpoint in folder.glob("checkpoint-*"):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        done.append(checkpoint)
    return sorted(done, key=lambda p: int(p.name.rsplit("-", 1)[1]))


def logged_eval_epochs(output: str) -> list[float]:
    """The epochs of the Trainer's evaluation log lines ({'eval_loss': ..., 'epoch': ...})."""
    return [float(m.group(1)) for line in output.splitlines() if "eval_loss" in line
            for m in [re.search(r"'epoch': '?([\d.]+)'?", line)] if m]


def test_sigkill_mid_training_then_resume(tmp_path, data, tiny_encoder_dir):
    output, checkpoints = tmp_path / "model", tmp_path / "model.checkpoints"
    command = train_command(data, tiny_encoder_dir, output, epochs=4)
    with open(tmp_path / "first.log", "wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=env(), stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while not complete_checkpoints(checkpoints):
                assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.05)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not output.exists()  # killed before the end: no model folder, not even half of one
    last = complete_checkpoints(checkpoints)[-1]
    state = json.loads((last / "trainer_state.json").read_text())
    assert 1 <= state["epoch"] < 4
    # a checkpoint cut short mid-save (as a kill during the write leaves it): no trainer state
    partial = checkpoints / f"checkpoint-{state['global_step'] + 1000}"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes((last / "model.safetensors").read_bytes()[:999])

    resumed = subprocess.run([*command, "--resume"], cwd=tmp_path, env=env(),
                             capture_output=True, text=True, timeout=600)
    text = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, text[-3000:]
    assert f"removing the incomplete checkpoint {partial}" in text
    assert f"resuming from {last}" in text
    epochs = logged_eval_epochs(text)
    assert epochs and min(epochs) > state["epoch"] and max(epochs) == 4  # not from scratch
    for name in MODEL_FILES:
        assert (output / name).is_file(), name
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["rows"]["train"] + summary["rows"]["validation"] == 45
    assert not checkpoints.exists()  # removed once the model is written
    from model.classifier import Classifier

    assert Classifier.load(output).predict(["We are ready to talk."])[0].stance


def limit_file_size(limit: int):
    def apply() -> None:  # runs in the child; Python ignores SIGXFSZ, so writes get EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error: ")]


def test_a_failed_checkpoint_write_is_one_error_and_leaves_nothing(
    tmp_path, data, tiny_encoder_dir
):
    """The tiny model's checkpoint needs ~4 MB; a 2 MB file-size limit fails its write."""
    result = subprocess.run(
        train_command(data, tiny_encoder_dir, tmp_path / "model", epochs=2), cwd=tmp_path,
        env=env(), capture_output=True, text=True, timeout=600,
        preexec_fn=limit_file_size(2_000_000),
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = error_lines(result.stderr)
    assert re.search(r"could not write the checkpoint .*checkpoint-\d+ \(.*File too large.*\)"
                     r".*rerun with --resume", line), line
    assert {p.name for p in tmp_path.iterdir()} == {"data.jsonl"}  # no model, no checkpoints


WRITE_MODEL = """
import resource, sys
from pathlib import Path
from model.errors import ModelWriteError
from model.persistence import load_model
from training.output import write_atomically

model, tokenizer = load_model(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
try:
    write_atomically(model, tokenizer, Path(sys.argv[2]), {}, "data.jsonl")
except ModelWriteError as err:
    print(f"error: {err}")
    sys.exit(3)
"""


def test_a_failed_final_save_keeps_the_old_model_and_leaves_no_staging(
    tmp_path, tiny_model_dir
):
    output = tmp_path / "models" / "mine"
    shutil.copytree(tiny_model_dir, output)
    before = weights_hash(output)
    result = subprocess.run([sys.executable, "-c", WRITE_MODEL, str(tiny_model_dir),
                             str(output)], cwd=REPO, env=env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 3, result.stderr[-3000:]
    (line,) = error_lines(result.stdout)
    assert re.search(r"could not write the model to .*mine \(.*File too large.*\); nothing "
                     r"was written there", line), line
    assert [p.name for p in output.parent.iterdir()] == ["mine"]  # no staging sibling left
    assert weights_hash(output) == before
    assert sorted(p.name for p in output.iterdir()) == sorted(
        p.name for p in tiny_model_dir.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only folder")
def test_a_read_only_output_parent_fails_before_training(tmp_path, data, tiny_encoder_dir):
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        result = subprocess.run(train_command(data, tiny_encoder_dir, parent / "model", 1),
                                cwd=tmp_path, env=env(), capture_output=True, text=True,
                                timeout=300)
    finally:
        parent.chmod(0o755)
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert "cannot write to" in line and "Permission denied" in line
    assert list(parent.iterdir()) == []


def tiny_args(data: Path, encoder: Path, output: Path, **extra):
    from training.arguments import TrainArguments

    return TrainArguments(data=str(data), base_model=str(encoder), output=str(output),
                          epochs=1, batch_size=8, max_seq_length=32, select_backend=False,
                          **extra)


def plant_checkpoint(checkpoints: Path, step: int, complete: bool) -> Path:
    folder = checkpoints / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    if complete:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_a_fresh_run_clears_checkpoints_of_an_earlier_run(tmp_path, data, tiny_encoder_dir,
                                                           capsys):
    """Left in place, a stale checkpoint-999 would outrank this run's in rotation and
    in a later --resume."""
    from training.trainer import train

    stale = plant_checkpoint(tmp_path / "model.checkpoints", 999, complete=True)
    result = train(tiny_args(data, tiny_encoder_dir, tmp_path / "model"))
    assert "removing 1 checkpoint(s) of an earlier run" in capsys.readouterr().out
    assert not stale.exists() and (result.output / "model.safetensors").is_file()


def test_resume_with_only_a_partial_checkpoint_starts_over(tmp_path, data, tiny_encoder_dir,
                                                            capsys):
    from training.trainer import train

    partial = plant_checkpoint(tmp_path / "model.checkpoints", 5, complete=False)
    result = train(tiny_args(data, tiny_encoder_dir, tmp_path / "model", resume=True))
    out = capsys.readouterr().out
    assert f"removing the incomplete checkpoint {partial}" in out
    assert "no complete checkpoint in" in out and "training from the start" in out
    assert (result.output / "model.safetensors").is_file()
    assert not (tmp_path / "model.checkpoints").exists()
