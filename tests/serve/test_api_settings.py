"""`detente serve`'s settings: flags over DETENTE_* variables over one set of defaults."""

from __future__ import annotations

from dataclasses import fields

import pytest
from typer.testing import CliRunner

from serve.api.settings import (
    ServeArguments,
    env_defaults,
    env_name,
    parse_serve_arguments,
    read_api_key,
)
from serve.cli import app
from serve.cli.service import warn_if_open


def test_defaults_are_the_dataclass_defaults():
    args = parse_serve_arguments([], environ={})
    assert args == ServeArguments()
    assert (args.host, args.port, args.max_batch_size, args.max_wait_ms) == (
        "127.0.0.1", 8000, 64, 5.0)
    assert (args.max_texts, args.max_queue, args.demo, args.engine) == (256, 1024, True, "local")


def test_every_field_has_help_and_a_variable():
    for f in fields(ServeArguments):
        assert f.metadata.get("help"), f.name
        assert env_name(f.name) == "DETENTE_" + f.name.upper()


def test_variables_set_fields_and_flags_win():
    environ = {"DETENTE_MAX_BATCH_SIZE": "16", "DETENTE_MAX_WAIT_MS": "2.5",
               "DETENTE_DEMO": "off", "DETENTE_MODEL": "", "DETENTE_PORT": "9000"}
    assert env_defaults(environ) == {"max_batch_size": 16, "max_wait_ms": 2.5, "demo": False,
                                     "model": None, "port": 9000}
    args = parse_serve_arguments(["--max-batch-size", "8", "--demo"], environ=environ)
    assert (args.max_batch_size, args.max_wait_ms, args.demo, args.port) == (8, 2.5, True, 9000)
    assert parse_serve_arguments(["--no-demo"], environ={}).demo is False


@pytest.mark.parametrize(("environ", "words"), [
    ({"DETENTE_PORT": "eighty"}, "DETENTE_PORT='eighty' is not a whole number"),
    ({"DETENTE_DEMO": "maybe"}, "is not true or false"),
])
def test_a_bad_variable_names_itself(environ, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        env_defaults(environ)


@pytest.mark.parametrize(("values", "words"), [
    ({"max_batch_size": 0}, "max_batch_size must be at least 1"),
    ({"timeout_s": 0}, "timeout_s must be more than 0"),
    ({"engine": "k8s"}, "engine must be one of local, ray"),
    ({"max_wait_ms": -1}, "max_wait_ms must be 0 or more"),
])
def test_bad_values_are_refused(values, words):
    with pytest.raises(ValueError, match=words):
        ServeArguments(**values)


def test_the_api_key_comes_from_a_file_or_the_variable_never_both(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n", encoding="utf-8")
    with_file = ServeArguments(api_key_file=str(key_file))
    assert read_api_key(with_file, environ={}) == "s3cret"
    assert read_api_key(ServeArguments(), environ={"DETENTE_API_KEY": " k2 "}) == "k2"
    assert read_api_key(ServeArguments(), environ={}) is None
    with pytest.raises(ValueError, match="not both"):
        read_api_key(with_file, environ={"DETENTE_API_KEY": "k2"})
    key_file.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        read_api_key(with_file, environ={})


def test_binding_beyond_this_machine_without_a_key_warns(capsys):
    warn_if_open(ServeArguments(), None)
    assert capsys.readouterr().err == ""
    warn_if_open(ServeArguments(host="0.0.0.0"), None)
    err = capsys.readouterr().err
    assert "without an API key" in err and "demo at /demo has no login" in err
    warn_if_open(ServeArguments(host="0.0.0.0", demo=False), "key")
    assert capsys.readouterr().err == ""


def test_the_command_is_registered_and_reports_bad_input_in_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in ("--max-batch-size", "--max-wait-ms", "--max-texts", "--max-chars",
                 "--max-body-bytes", "--max-queue", "--timeout-s", "--api-key-file",
                 "--engine", "--replicas", "DETENTE_"):
        assert flag in result.output, flag
    missing = runner.invoke(app, ["serve", "--model", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "error:" in missing.output
    assert "does not exist" in missing.output
    bad = runner.invoke(app, ["serve", "--max-batch-size", "0"])
    assert bad.exit_code == 1 and "max_batch_size must be at least 1" in bad.output
