"""The demo's batch upload under bad files, and the safety of its upload handling.

Bad files go through the batch tab's handler (``DemoHandlers.batch``, what the /batch event
calls) and through the launched app with gradio_client. A file that cannot be scored as a
whole gives one message in the page (a ``gr.Error`` that is not logged as a server
traceback); a file with bad rows is scored with every row kept, in order, with the reason in
``error``.

Uploads: the server stores them in a private temporary folder under a generated (content
hash) subfolder with a sanitised base name, whatever name the client sends; a path that was
not uploaded is refused; the size limit is enforced by the server, not only the client.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serve.corrections import CorrectionStore
from serve.demo import DemoHandlers, launch
from serve.demo_batch import BatchLimits
from serve.demo_runner import ModelRunner
from training.tables import read_table

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
LIMITS = BatchLimits(max_rows=200, max_bytes=3_000_000)
OK = "We are ready to sit down with them tomorrow and talk about a ceasefire."
JUNK = bytes(range(256)) * 40


def no_progress(*_args, **_kwargs) -> None:
    """Stands in for gr.Progress outside a request."""


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def corrupt_parquet(path: Path) -> None:
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(50)],
                             "text": [f"{OK} {i}" for i in range(50)]}), path)
    data = bytearray(path.read_bytes())
    for i in range(8, 600):
        data[i] = (data[i] * 7 + 3) % 256
    path.write_bytes(bytes(data))


@dataclass
class Upload:
    name: str
    data: bytes | Callable[[Path], None]
    refused: str | None = None  # regex of the message; None: scored with every row
    ids: list | None = None  # the ids of the scored rows, in order
    errors: list[bool] | None = None  # per row: does `error` say why it was not scored?

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        if callable(self.data):
            self.data(path)
        else:
            path.write_bytes(self.data)
        return path


# The upload is read as `detente score` reads it, so it is refused with the same sentences.
REFUSED = [
    Upload("empty.csv", b"", r"empty\.csv is empty"),
    Upload("header_only.csv", b"id,text\n", r"header but no rows"),
    Upload("no_text_column.csv", b"id,body\n1,hello\n", r"no column 'text'.*'body'"),
    Upload("binary.csv", JUNK, r"binary\.csv as CSV: it holds NUL bytes, so it is not a text"),
    Upload("binary.parquet", JUNK, r"could not read binary\.parquet as Parquet"),
    Upload("corrupt.parquet", corrupt_parquet, r"could not (read|parse) corrupt\.parquet"),
    Upload("invalid_utf8.csv", f"id,text\n1,{OK}\n2,bad \xff byte\n".encode("latin-1"),
           r"row 2, column 'text' is not valid UTF-8 \(b'bad \\xff byte'\)"),
    Upload("unclosed_quote.csv", f'id,text\n1,{OK}\n2,"never closed\n'.encode(),
           r"row 2 opens a quote in column 'text' that is never closed"),
    Upload("extra_fields.csv", f"id,text\n1,{OK}\n2,a,b,c\n".encode(),
           r"row 2 \(line 3\) has 4 field\(s\) where the header has 2"),
    Upload("broken.jsonl", jsonl([{"text": OK}]) + b'{"text": \n', r"line 2: not valid JSON"),
    Upload("statements.txt", f"id,text\n1,{OK}\n".encode(), r"cannot tell the format"),
]

MIXED_ROWS = [
    {"id": "a", "text": OK}, {"id": "b", "text": ""}, {"id": "c", "text": " \t "},
    {"id": "d", "text": None}, {"id": "e", "text": float("nan")}, {"id": "f", "text": 12345},
    {"id": "g", "text": ["a", "list"]}, {"id": 7, "text": "A number as the id."},
    {"text": "No id at all."},
]
SCORED = [
    Upload("mixed_types.jsonl", jsonl(MIXED_ROWS),
           ids=["a", "b", "c", "d", "e", "f", "g", "7", None],  # mixed types: text
           errors=[False, True, True, True, True, True, True, False, False]),
    Upload("numbers_in_text.parquet",
           lambda p: pq.write_table(pa.table({"id": ["x", "y"], "text": [1, 2]}), p),
           ids=["x", "y"], errors=[True, True]),
    Upload("empty_and_nan.csv", f"id,text\n1,{OK}\n2,\n3,   \n4,NaN\n".encode(),
           ids=["1", "2", "3", "4"], errors=[False, True, True, False]),  # "NaN" is a word
    Upload("one_mb_statement.csv", f"id,text\n1,{OK}\n2,{'word ' * 210_000}\n".encode(),
           ids=["1", "2"], errors=[False, True]),
    Upload("utf16_bom.csv", f"id,text\n1,{OK}\n2,Les négociations reprendront.\n"
           .encode("utf-16"), ids=["1", "2"], errors=[False, False]),
    Upload("duplicate_ids.csv", f"id,text\n1,{OK}\n1,Another statement.\n".encode(),
           ids=["1", "1"], errors=[False, False]),
    Upload("unknown_labels.csv", f"id,text,stance\n1,{OK},hostile\n2,Talks.,neutral\n".encode(),
           ids=["1", "2"], errors=[False, False]),
]


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    from model.classifier import Classifier

    return Classifier.load(tiny_model_dir)


@pytest.fixture(scope="module")
def handlers(classifier, tmp_path_factory) -> DemoHandlers:
    runner = ModelRunner(classifier)
    store = CorrectionStore(tmp_path_factory.mktemp("c") / "c.jsonl",
                            stance_labels=runner.stance_labels,
                            sentiment_labels=runner.sentiment_labels)
    return DemoHandlers(runner, store, LIMITS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app(classifier, tmp_path_factory):
    demo = launch(classifier, host="127.0.0.1", port=free_port(), limits=LIMITS, block=False,
                  corrections_path=tmp_path_factory.mktemp("c") / "c.jsonl")
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app.local_url, verbose=False)


def scored_rows(path: str) -> list[dict]:
    return read_table(path).to_dict("records")


@pytest.mark.parametrize("upload", REFUSED, ids=[u.name for u in REFUSED])
def test_a_file_that_cannot_be_read_gets_one_message(tmp_path, handlers, upload):
    path = upload.write(tmp_path)
    with pytest.raises(gr.Error) as caught:
        handlers.batch(None, str(path), "text", "id", progress=no_progress)
    assert caught.value.print_exception is False  # a message in the page, no server traceback
    message = caught.value.message
    assert re.search(upload.refused, message), message
    assert str(tmp_path) not in message and "\n" not in message  # the name only, one line


@pytest.mark.parametrize("upload", SCORED, ids=[u.name for u in SCORED])
def test_bad_rows_keep_their_place_with_an_error(tmp_path, handlers, upload):
    path = upload.write(tmp_path)
    summary, table, _, _, scored = handlers.batch(None, str(path), "text", "id",
                                                  progress=no_progress)
    rows = scored_rows(scored)
    assert len(rows) == len(table) == len(upload.ids)
    got_ids = [None if isinstance(r["id"], float) else r["id"] for r in rows]
    if path.suffix == ".jsonl":
        assert got_ids == upload.ids
    else:  # CSV and Parquet outputs hold ids as text
        assert got_ids == [str(i) for i in upload.ids]
    has_error = [isinstance(r["error"], str) and r["error"] != "" for r in rows]
    assert has_error == upload.errors, [r["error"] for r in rows]
    n_ok = upload.errors.count(False)
    assert f"Scored **{n_ok}** of {len(upload.ids)}" in summary
    assert Path(scored).suffix == path.suffix  # the upload's own format comes back


def test_the_scored_file_gets_a_generated_name_whatever_the_upload_is_called(
    tmp_path, handlers
):
    path = tmp_path / "..;rm -rf ~;=HYPERLINK(x).csv"
    path.write_bytes(f"id,text\n1,{OK}\n".encode())
    *_, scored = handlers.batch(None, str(path), "text", "id", progress=no_progress)
    scored = Path(scored)
    assert scored.parent.parent == handlers.downloads
    assert re.fullmatch(r"[0-9a-f]{32}", scored.parent.name)
    assert re.fullmatch(r"detente-scored-\d{8}-\d{6}\.csv", scored.name)


# --- through the launched app ---------------------------------------------------------------

APP_REFUSED = [u for u in REFUSED if u.name in (
    "empty.csv", "binary.csv", "corrupt.parquet", "invalid_utf8.csv", "unclosed_quote.csv")]


@pytest.mark.parametrize("upload", APP_REFUSED, ids=[u.name for u in APP_REFUSED])
def test_the_app_shows_the_message_and_logs_no_traceback(tmp_path, client, capfd, upload):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = upload.write(tmp_path)
    with pytest.raises(AppError, match=upload.refused):
        client.predict(None, handle_file(str(path)), "text", "id", api_name="/batch")
    assert "Traceback" not in capfd.readouterr().err


def test_the_app_scores_mixed_rows_and_keeps_them(tmp_path, client, capfd):
    from gradio_client import handle_file

    upload = SCORED[0]
    path = upload.write(tmp_path)
    summary, table, _, _, scored = client.predict(None, handle_file(str(path)), "text", "id",
                                                  api_name="/batch")
    n_bad = upload.errors.count(True)
    assert f"Scored **{9 - n_bad}** of 9" in summary
    assert f"{n_bad} row(s) could not be scored" in summary
    errors = [dict(zip(table["headers"], row))["error"] for row in table["data"]]
    assert [bool(e) for e in errors] == upload.errors
    assert len(scored_rows(scored)) == 9
    assert "Traceback" not in capfd.readouterr().err


def upload_raw(app, files: list[tuple[str, bytes]]) -> httpx.Response:
    """POST files to the server's upload route the way a browser does, with any name."""
    return httpx.post(f"{app.local_url}gradio_api/upload", timeout=30,
                      files=[("files", (name, data)) for name, data in files])


def call_batch_raw(app, file_path: str) -> str:
    """/batch over the HTTP API with a file path the client chose; the event stream's text."""
    data = [None, {"path": file_path, "meta": {"_type": "gradio.FileData"}}, "text", "id"]
    event = httpx.post(f"{app.local_url}gradio_api/call/batch", json={"data": data},
                       timeout=30).json()["event_id"]
    with httpx.stream("GET", f"{app.local_url}gradio_api/call/batch/{event}",
                      timeout=60) as response:
        return "".join(response.iter_text())


def test_crafted_upload_names_stay_inside_the_private_upload_folder(app, tmp_path):
    upload_dir = Path(app.server_app.uploaded_file_dir).resolve()
    names = ["../../etc/passwd.csv", "../../../../tmp/detente-escape.csv",
             str(tmp_path / "absolute.csv"), "..\\..\\windows.csv", "a/../../b.csv"]
    body = f"id,text\n1,{OK}\n".encode()
    response = upload_raw(app, [(name, body) for name in names])
    assert response.status_code == 200, response.text
    stored = [Path(p).resolve() for p in response.json()]
    assert len(stored) == len(names)
    for path in stored:
        assert path.parent.parent == upload_dir  # <upload dir>/<generated>/<name>
        assert re.fullmatch(r"[0-9a-f]{32,64}", path.parent.name)
        assert path.is_file() and path.read_bytes() == body
        assert ".." not in path.relative_to(upload_dir).parts
    for escaped in (Path("/etc/passwd.csv"), Path("/tmp/detente-escape.csv"),
                    upload_dir.parent / "etc" / "passwd.csv", upload_dir / "b.csv"):
        assert not escaped.exists(), escaped
    assert not (tmp_path / "absolute.csv").exists()
    refused = upload_raw(app, [("..", body)])  # nothing left of the name: refused outright
    assert refused.status_code == 400 and "Invalid file name" in refused.text
    # the demo reads the stored file as any other upload
    assert "event: complete" in call_batch_raw(app, str(stored[0]))
    if "detente-" in upload_dir.name:  # our private folder, unless the user set GRADIO_TEMP_DIR
        assert stat.S_IMODE(upload_dir.stat().st_mode) == 0o700
        assert upload_dir.parent == Path(tempfile.gettempdir()).resolve()


def test_a_path_that_was_not_uploaded_is_refused(app, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("id,text\n1,the secret statement\n", encoding="utf-8")
    for path in (str(secret), "/etc/hostname",
                 f"{app.server_app.uploaded_file_dir}/../../{secret}"):
        events = call_batch_raw(app, path)
        assert "event: error" in events and "not uploaded" in events, events
        assert "the secret statement" not in events


def test_the_server_enforces_the_size_limit(app):
    upload_dir = Path(app.server_app.uploaded_file_dir)
    before = set(upload_dir.rglob("*"))
    big = b"id,text\n" + b"1,A long statement about the talks in Geneva.\n" * 70_000
    assert len(big) > LIMITS.max_bytes
    response = upload_raw(app, [("big.csv", big)])
    assert response.status_code == 413, response.text
    assert set(upload_dir.rglob("*")) == before  # nothing of it is kept
