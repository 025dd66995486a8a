"""Crash safety: SIGKILL mid-run, then ``--resume``, gives exactly the uninterrupted file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from model.errors import DataError
from serve.scoring import score_file

# One thread: the runs are quicker on a busy 2-core machine, and their sums are in one order.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TEXTS = [
    "We are ready to sit down with them tomorrow and talk about a ceasefire.",
    "The junta shelled the villages again and murdered dozens of civilians.",
    "Two rockets struck the port district overnight.",
    "Only negotiations can stop this slaughter, the envoy said grimly.",
]


def make_input(path: Path, rows: int) -> Path:
    texts = [f"{TEXTS[i % 4]} Report {i}, {'again ' * (i % 7)}said officials." for i in
             range(rows)]
    pd.DataFrame({"text": texts, "n": range(rows)}).to_csv(path, index=False)
    return path


def command(src: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "serve.cli", "score", str(src), "-o", str(out),
            "--model", str(model), "--backend", "torch", "--chunk-size", "40",
            "--no-progress", *extra]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=ENV)


def manifest_parts(out: Path) -> int:
    try:
        manifest = json.loads((out.parent / (out.name + ".parts") / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return 0
    return len(manifest["parts"])


def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path, tiny_model_dir):
    src = make_input(tmp_path / "in.csv", 2400)
    reference = tmp_path / "reference.csv"
    done = run(command(src, reference, tiny_model_dir))
    assert done.returncode == 0, done.stderr

    out = tmp_path / "killed.csv"
    proc = subprocess.Popen(command(src, out, tiny_model_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.monotonic() + 180
    while manifest_parts(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "the run finished before it could be killed: use a bigger file"
    parts_before = manifest_parts(out)
    assert 2 <= parts_before < 60

    again = run(command(src, out, tiny_model_dir))
    assert again.returncode == 1 and "pass --resume" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr

    # A damaged part (say the disk filled up) is scored again, not trusted.
    last = sorted((tmp_path / "killed.csv.parts").glob("part-*.parquet"))[parts_before - 1]
    last.write_bytes(last.read_bytes()[:100])

    resumed = run(command(src, out, tiny_model_dir, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "already scored" in resumed.stderr and "1 damaged part(s)" in resumed.stderr
    assert out.read_bytes() == reference.read_bytes()  # no row lost, repeated or changed
    assert not (tmp_path / "killed.csv.parts").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_refuses_a_changed_input_or_model_options(tmp_path, tiny_model_dir):
    src = make_input(tmp_path / "in.csv", 30)
    out = tmp_path / "out.csv"
    work = tmp_path / "out.csv.parts"
    work.mkdir()
    # An interrupted run's folder, as score_file leaves it (one part done).
    score_file(src, tmp_path / "full.csv", model=tiny_model_dir, backend="torch", chunk_size=10,
               progress=False)
    manifest = {
        "input": str(src), "fingerprint": {"size": 0, "head_sha256": "", "tail_sha256": ""},
        "settings": {}, "chunk_size": 10, "batch_size": 32, "total_rows": 30,
        "parts": [{"file": "part-000000.parquet", "first_row": 0, "rows": 10}], "version": 1,
    }
    (work / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="is not the file the interrupted run was scoring"):
        score_file(src, out, model=tiny_model_dir, backend="torch", resume=True,
                   progress=False)
    from serve.resume import fingerprint

    manifest["fingerprint"] = fingerprint(src)
    manifest["settings"] = {"text_column": "body"}
    (work / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="text_column was 'body', now 'text'"):
        score_file(src, out, model=tiny_model_dir, backend="torch", resume=True,
                   progress=False)
    assert not out.exists()


def test_resume_with_nothing_to_resume_is_a_normal_run(tmp_path, tiny_model_dir):
    src = make_input(tmp_path / "in.csv", 50)
    reference = tmp_path / "ref.jsonl"
    score_file(src, reference, model=tiny_model_dir, backend="torch", chunk_size=10,
               progress=False)
    out = tmp_path / "out.jsonl"
    result = score_file(src, out, model=tiny_model_dir, backend="torch", chunk_size=10,
                        resume=True, progress=False)
    assert result.rows == 50 and out.read_bytes() == reference.read_bytes()
