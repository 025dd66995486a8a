"""Security checks: no code from model files, no remote code, safe CSV, safe corrections.

- Models load from safetensors only: a pickled ``pytorch_model.bin`` (which runs code when
  unpickled) is never opened without ``--allow-pickle``, for a fine-tuned model or a base
  encoder. The source never passes ``trust_remote_code`` and never unpickles anything.
- The demo's scored CSV/TSV cannot carry a live spreadsheet formula.
- The corrections file stays valid training data under writers in separate processes.
(The demo's upload limits and file names are tested in test_demo_uploads.py.)
"""

from __future__ import annotations

import ast
import json
import multiprocessing
import pickle
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from model.labels import SENTIMENT_LABELS, STANCE_LABELS
from serve.cli import app
from serve.corrections import CorrectionStore

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("model", "training", "serve", "benchmarks")
runner = CliRunner()


class MarkerPayload:
    """Unpickling this writes a marker file: proof that a pickle was (or was not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran while loading the weights"))


def plant_pickle(folder: Path, marker: Path) -> None:
    """Replace the folder's safetensors weights with a malicious pytorch_model.bin."""
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": MarkerPayload(marker)}))


def test_the_planted_pickle_does_run_code_when_unpickled(tmp_path):
    """The control for the tests below: loading this file would leave the marker."""
    marker = tmp_path / "pwned"
    plant_pickle(tmp_path, marker)
    pickle.loads((tmp_path / "pytorch_model.bin").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("command", ["predict", "evaluate", "retrain", "demo"])
def test_a_malicious_pickle_model_is_never_unpickled(
    tmp_path, monkeypatch, tiny_model_dir, corpus_file, command
):
    monkeypatch.setenv("DETENTE_HOME", str(tmp_path / "home"))
    model, marker = tmp_path / "model", tmp_path / "pwned"
    shutil.copytree(tiny_model_dir, model)
    plant_pickle(model, marker)
    args = {
        "predict": ["predict", "--model", str(model), "hello"],
        "evaluate": ["evaluate", str(model), "--data", str(corpus_file), "--report",
                     str(tmp_path / "report")],
        "retrain": ["retrain", "--from", str(model), "--data", str(corpus_file), "--output",
                    str(tmp_path / "new")],
        "demo": ["demo", "--model", str(model), "--host", "no-such-host.invalid"],
    }[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "--allow-pickle" in result.output, result.output
    assert not marker.exists()


def test_a_pickle_only_base_encoder_is_refused_for_training(tmp_path, tiny_encoder_dir,
                                                            labelled_file):
    encoder, marker = tmp_path / "encoder", tmp_path / "pwned"
    shutil.copytree(tiny_encoder_dir, encoder)
    plant_pickle(encoder, marker)
    result = runner.invoke(app, ["train", "--data", str(labelled_file), "--base_model",
                                 str(encoder), "--output", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "only pickled weights" in result.output and "--allow_pickle" in result.output
    assert not marker.exists() and not (tmp_path / "out").exists()


def python_files() -> list[Path]:
    files = [p for d in SOURCE_DIRS for p in (REPO / d).rglob("*.py")]
    assert len(files) > 20
    return files


def test_no_source_file_passes_trust_remote_code():
    """No keyword argument, dict key or string constant ``trust_remote_code`` anywhere."""
    found = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code" or (
                isinstance(node, ast.Constant) and node.value == "trust_remote_code"
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    for path in REPO.glob("**/*.y*ml"):  # configs, CI
        if ".venv" not in path.parts and "trust_remote_code" in path.read_text("utf-8"):
            found.append(str(path.relative_to(REPO)))
    assert not found, found


def test_no_source_file_unpickles():
    """torch.load, pickle.load(s) and joblib.load all unpickle; none is called."""
    calls = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr in ("load", "loads")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("torch", "pickle", "joblib", "dill", "cloudpickle")
            ):
                calls.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not calls, calls


FORMULA = st.sampled_from(["=", "+", "-", "@"])


def _is_plain_number(cell: str) -> bool:
    """A cell such as ``+0`` or ``-1.5e3``: written as it is, since it cannot run anything."""
    if not cell or any(c not in "0123456789.eE+-" for c in cell):
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_plain_numbers_are_not_escaped_but_formulas_that_look_numeric_are():
    from training.tables import escape_formula

    for number in ("+0", "-5", "+1.5e3", "-.25", "+5."):
        assert escape_formula(number) == number
    for formula in ("+1+1", "-5*2", "=1", "+0 ", "-1e", "+inf"):
        assert escape_formula(formula) == "'" + formula


@settings(max_examples=50, deadline=None)
@example(cells=[("+", "0"), ("-", "1.5e3"), ("=", "1")], fmt="csv")
@given(st.lists(st.tuples(FORMULA, st.text(max_size=20)), min_size=1, max_size=10),
       st.sampled_from(["csv", "tsv"]))
def test_scored_csv_cells_never_start_a_formula(cells, fmt):
    """Every text cell (input columns too) that starts with = + - @ is written escaped,
    unless the whole cell is a plain number."""
    import tempfile

    from serve.demo_batch import write_scored
    from training.tables import read_table

    texts = [prefix + rest for prefix, rest in cells]
    scored = pd.DataFrame({"id": [f"=id{i}" for i in range(len(texts))], "text": texts,
                           "source": texts, "sentiment_score": [-0.5] * len(texts)})
    with tempfile.TemporaryDirectory() as folder:
        back = read_table(write_scored(scored, fmt, Path(folder)))
    for column in ("id", "text", "source"):
        expected = [v if _is_plain_number(v) else "'" + v for v in scored[column]]
        assert back[column].astype(str).tolist() == expected
    assert back["sentiment_score"].astype(float).tolist() == [-0.5] * len(texts)  # numbers kept


def _correct_in_a_process(path: str, worker: int, rounds: int) -> None:
    store = CorrectionStore(path, stance_labels=STANCE_LABELS, sentiment_labels=SENTIMENT_LABELS)
    model = {"model_version": "v", "model_stance": "neutral", "model_sentiment": "neutral"}
    for i in range(rounds):
        # every worker corrects the shared statements (a rewrite) and adds its own (an append)
        store.add(f"Shared statement {i % 5} about the ceasefire.", STANCE_LABELS[worker % 3],
                  SENTIMENT_LABELS[i % 3], **model)
        store.add(f"Worker {worker} statement {i}: " + "the talks go on. " * (i % 7),
                  "neutral", None, **model)


def test_corrections_stay_valid_under_writers_in_separate_processes(tmp_path):
    """4 processes (each with its own thread locks: only the file lock protects them) append
    and rewrite while this process keeps reading; every read sees whole JSON lines.

    Forked, so the children start at once with everything imported (spawned children would
    spend seconds importing torch before the first write and hardly overlap).
    """
    from training.data import load_labelled
    from training.validation import validate

    path = tmp_path / "corrections.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_correct_in_a_process, args=(str(path), w, 25))
               for w in range(4)]
    for worker in workers:
        worker.start()
    reads = 0
    deadline = time.monotonic() + 120
    while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                json.loads(line)  # never half a line, never two lines run together
            reads += 1
        time.sleep(0.01)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert reads > 0
    frame = load_labelled(path)
    report = validate(frame, str(path))
    assert report.ok, report.render()
    assert len(frame) == 5 + 4 * 25  # the shared statements once each (the latest wins)
    assert frame["id"].is_unique
