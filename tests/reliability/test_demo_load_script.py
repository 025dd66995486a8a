"""benchmarks/demo_load.py: loopback only, bounded, and it produces its report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "demo_load.py"


def load_script():
    if "demo_load" not in sys.modules:  # dataclasses look their module up there
        spec = importlib.util.spec_from_file_location("demo_load", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["demo_load"] = module
        spec.loader.exec_module(module)
    return sys.modules["demo_load"]


@pytest.mark.parametrize("url", ["http://example.com:7860/", "http://10.0.0.5:7860",
                                 "http://0.0.0.0:7860/"])
def test_only_a_demo_on_this_machine_is_driven(url):
    with pytest.raises(SystemExit, match="must be a demo on this machine"):
        load_script().check_loopback(url)


def test_loopback_urls_are_accepted():
    script = load_script()
    assert script.check_loopback("http://127.0.0.1:7860") == "http://127.0.0.1:7860/"
    assert script.check_loopback("http://localhost:1234/") == "http://localhost:1234/"


def test_mix_and_summary():
    script = load_script()
    assert script.parse_mix("predict+explain=9,batch=1") == {"predict+explain": 9.0,
                                                             "batch": 1.0}
    with pytest.raises(SystemExit, match="unknown action"):
        script.parse_mix("delete=1")
    records = [script.Record("predict", 0.0, s / 1000) for s in range(1, 101)]
    records.append(script.Record("explain", 0.0, 1.0, error="timeout after 1 s"))
    summary = script.summarise(records, elapsed=10.0)
    assert summary["all"]["requests"] == 101 and summary["all"]["errors"] == 1
    assert summary["by_endpoint"]["predict"]["requests_per_s"] == 10.0
    assert summary["by_endpoint"]["predict"]["p50_ms"] == pytest.approx(50.5, abs=0.6)
    assert summary["by_endpoint"]["predict"]["p95_ms"] == pytest.approx(95.0, abs=1.1)
    assert summary["error_kinds"] == {"timeout after 1 s": 1}


@pytest.mark.slow
def test_a_short_run_writes_the_results(tmp_path, tiny_model_dir):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--duration", "3", "--clients", "3", "--model",
         str(tiny_model_dir), "--out-dir", str(tmp_path), "--note", "test run"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "demo_load.json").read_text())
    assert data["config"]["clients"] == 3 and data["summary"]["all"]["ok"] > 0
    assert data["summary"]["all"]["errors"] == 0 and data["server_tracebacks"] == 0
    assert "| all |" in (tmp_path / "demo_load.md").read_text()
