"""`detente demo`: registered, fails clearly on a bad model, serves on the asked port."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request

from typer.testing import CliRunner

from serve.cli import app


def test_demo_command_is_registered_with_its_options():
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--model", "--host", "--port", "--corrections"):
        assert option in result.output


def test_a_bad_model_folder_is_one_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--model", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "error:" in result.output and "does not exist" in result.output


def test_the_command_serves_the_demo_offline(tiny_model_dir, tmp_path, unused_port):
    port = unused_port
    env = {**os.environ, "DETENTE_HOME": str(tmp_path)}
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the command must switch analytics off itself
    process = subprocess.Popen(
        [sys.executable, "-m", "serve.cli", "demo", "--model", str(tiny_model_dir),
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until(lambda: any(f"detente demo running at {url}" in line for line in lines),
                   process, lines, timeout=120)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert "detente" in response.read().decode("utf-8", "replace")
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=10)
    output = "".join(lines)
    assert str(tmp_path / "corrections.jsonl") in output  # the default under DETENTE_HOME
    assert "public link" not in output and "share=True" not in output


def wait_until(condition, process: subprocess.Popen, lines: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            time.sleep(0.5)  # let the reader collect the last lines
            raise AssertionError("demo exited early:\n" + "".join(lines))
        time.sleep(0.2)
    raise AssertionError(f"demo did not start within {timeout} s:\n" + "".join(lines))
