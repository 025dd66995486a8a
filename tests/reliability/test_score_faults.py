"""Faults during ``detente score``: a write that fails (disk full), a damaged model folder.

A full disk is simulated with a file size limit (``RLIMIT_FSIZE``) on the real command in a
subprocess, SIGXFSZ ignored so that the write fails with EFBIG ("File too large") as it
would with ENOSPC. The SIGKILL-then-resume test lives in tests/serve/test_scoring_resume.py.
"""

from __future__ import annotations

import base64
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from model.backends.cache import GRAPH_FORMAT
from model.persistence import weights_hash
from serve.cli import app
from serve.scoring import score_file

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same sums in every process
CHUNK = 10
runner = CliRunner()


def make_input(path: Path) -> Path:
    """60 rows; rows 30-59 carry a 20 kB incompressible blob, so their parts are large."""
    rng = random.Random(3)
    pd.DataFrame({
        "id": [f"r{i:02d}" for i in range(60)],
        "text": [f"Statement {i}: we are ready to talk about a ceasefire." for i in range(60)],
        "blob": ["" if i < 30 else base64.b64encode(rng.randbytes(15_000)).decode()
                 for i in range(60)],
    }).to_csv(path, index=False)
    return path


def run_score(src: Path, out: Path, model: Path, *extra: str, max_file_size: int | None = None):
    """``detente score`` in a subprocess, optionally under a file size limit."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        if max_file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_size, max_file_size))

    return subprocess.run(
        [sys.executable, "-m", "serve.cli", "score", str(src), "-o", str(out), "--model",
         str(model), "--backend", "torch", "--chunk-size", str(CHUNK), "--no-progress", *extra],
        capture_output=True, text=True, timeout=300, env=ENV, preexec_fn=limit,
    )


def error_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def manifest(out: Path) -> dict:
    return json.loads((out.parent / f"{out.name}.parts" / "manifest.json").read_text())


def reference(src: Path, out: Path, model: Path) -> bytes:
    """The uninterrupted result, scored in this process with one thread like the runs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        score_file(src, out, model=model, backend="torch", chunk_size=CHUNK, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out.read_bytes()


@pytest.mark.slow
def test_disk_full_keeps_the_finished_parts_and_resume_gives_the_uninterrupted_result(
    tmp_path, tiny_model_dir
):
    src = make_input(tmp_path / "in.csv")
    expected = reference(src, tmp_path / "reference.jsonl", tiny_model_dir)
    out = tmp_path / "out.jsonl"
    out.write_text("an older output\n")  # must survive every failed run untouched
    parts = tmp_path / "out.jsonl.parts"

    # 0. Not even the first part fits: nothing to keep, no work folder left behind.
    failed = run_score(src, out, tiny_model_dir, max_file_size=2_000)
    assert failed.returncode == 1
    line = error_line(failed)
    assert f"could not write {parts / 'part-000000.parquet'}: File too large." in line
    assert line.endswith("No part was finished: make room, then run the same command again")
    assert not parts.exists() and out.read_text() == "an older output\n"

    # 1. A part cannot be written: the three small parts stay, the large fourth does not.
    failed = run_score(src, out, tiny_model_dir, max_file_size=50_000)
    assert failed.returncode == 1
    line = error_line(failed)
    assert f"could not write {parts / 'part-000003.parquet'}: File too large." in line
    assert f"The 3 finished part(s) (30 of 60 rows) are kept in {parts}" in line
    assert line.endswith("run the same command with --resume")
    assert [p["rows"] for p in manifest(out)["parts"]] == [10, 10, 10]
    assert sorted(p.name for p in parts.glob("part-*")) == [
        f"part-00000{i}.parquet" for i in range(3)]  # no half-written part, no temp file
    assert out.read_text() == "an older output\n"

    # 2. Resumed, still short of space: every part is written, then the output is not.
    failed = run_score(src, out, tiny_model_dir, "--resume", max_file_size=300_000)
    assert failed.returncode == 1
    assert "resuming" in failed.stderr and "30 of 60 rows already scored" in failed.stderr
    line = error_line(failed)
    assert line.startswith(f"error: could not write the output {out}: File too large.")
    assert f"Every row is scored and kept in {parts}" in line
    assert [p["rows"] for p in manifest(out)["parts"]] == [10] * 6
    assert out.read_text() == "an older output\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    # 3. With room again, --resume writes exactly the uninterrupted output.
    done = run_score(src, out, tiny_model_dir, "--resume")
    assert done.returncode == 0, done.stderr
    assert "60 of 60 rows already scored" in done.stderr and "scored 60 rows" in done.stderr
    assert out.read_bytes() == expected
    assert not parts.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- model folder


def truncate(name: str, size: int):
    def damage(folder: Path) -> None:
        path = folder / name
        path.write_bytes(path.read_bytes()[:size])
    return damage


def overwrite(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def remove(name: str):
    return lambda folder: (folder / name).unlink()


def edit_config(change):
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))
    return damage


def drop_tensor(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    del tensors["stance_head.weight"]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def damaged_onnx_cache(folder: Path) -> None:
    """A cached graph that the cache index vouches for, but that is garbage on disk."""
    cache = folder / "onnx"
    cache.mkdir()
    (cache / "model.fp32.onnx").write_bytes(b"\x08\x07garbage" * 10)
    (cache / "cache.json").write_text(json.dumps(
        {"weights_hash": weights_hash(folder), "graph_format": GRAPH_FORMAT,
         "files": {"model.fp32.onnx": {"opset": 17}}}))


DAMAGE = {
    "truncated-weights": truncate("model.safetensors", 1000),
    "empty-weights": overwrite("model.safetensors", b""),
    "no-weights": remove("model.safetensors"),
    "weights-missing-a-tensor": drop_tensor,
    "config-not-json": overwrite("config.json", b"\x00\xff{not json"),
    "config-not-an-object": overwrite("config.json", b"[1, 2, 3]"),
    "config-no-config": remove("config.json"),
    "config-other-shapes": edit_config(lambda c: c["encoder"].update(hidden_size=64)),
    "config-four-stance-labels": edit_config(
        lambda c: c.update(stance_labels=["a", "b", "c", "d"])),
    "tokenizer-truncated": truncate("tokenizer.json", 5000),
    "tokenizer-gone": lambda folder: [(folder / n).unlink() for n in
                                      ("tokenizer.json", "tokenizer_config.json")],
    "pickled-weights-only": lambda folder: (folder / "model.safetensors").rename(
        folder / "pytorch_model.bin"),
}


@pytest.fixture
def damaged_copy(tmp_path, tiny_model_dir):
    def copy(damage) -> Path:
        folder = tmp_path / "model"
        shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("onnx"))
        damage(folder)
        return folder
    return copy


@pytest.fixture
def statements(tmp_path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text("text\nWe are ready to talk.\nThey shelled the port again.\n")
    return path


def refused(statements: Path, model: Path, backend: str) -> str:
    out = statements.with_name("out.csv")
    result = runner.invoke(app, ["score", str(statements), "-o", str(out), "--model",
                                 str(model), "--backend", backend, "--no-progress"])
    assert result.exit_code == 1, result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and not out.exists()
    return lines[0]


@pytest.mark.parametrize("backend", ["torch", "auto"])
@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_model_folder_is_one_clear_line(
    damage, backend, damaged_copy, statements
):
    model = damaged_copy(DAMAGE[damage])
    line = refused(statements, model, backend)
    assert str(model) in line  # names the folder (or the file in it) at fault
    if damage == "pickled-weights-only":
        assert "pickled weights" in line and "arbitrary code" in line


@pytest.mark.parametrize("backend", ["auto", "onnx"])
def test_a_damaged_onnx_cache_is_one_clear_line(backend, damaged_copy, statements):
    model = damaged_copy(damaged_onnx_cache)
    line = refused(statements, model, backend)
    assert str(model / "onnx" / "model.fp32.onnx") in line


def test_a_missing_or_wrong_model_path_is_one_clear_line(tmp_path, statements):
    assert "does not exist" in refused(statements, tmp_path / "nowhere", "torch")
    assert "is a file, not a model folder" in refused(statements, statements, "torch")
