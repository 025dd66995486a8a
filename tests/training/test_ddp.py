"""The documented multi-process command (torchrun) trains one model, written once.

On a machine without GPUs torchrun runs CPU DDP over gloo: the same code path as
multi-GPU DDP, and cheap enough with the tiny encoder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_torchrun_two_processes_write_one_model(tmp_path, corpus_file, tiny_encoder_dir):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp-model"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "-m", "serve.cli", "train",
         "--data", str(corpus_file), "--base_model", str(tiny_encoder_dir),
         "--output", str(out), "--epochs", "1", "--batch_size", "4", "--max_seq_length", "32"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("model saved to") == 1
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["rows"]["train"] == 9
    assert (out / "model.safetensors").is_file()
