"""``serve.option_parsing``: HfArgumentParser plus positional fields and ``--no-`` flags."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from serve.option_parsing import DataclassParser, explicit_bool_values


@dataclass
class Example:
    texts: list[str] = field(metadata={"help": "Statements."})
    model: str | None = field(default=None, metadata={"help": "Model folder."})
    as_json: bool = field(default=False, metadata={"help": "JSON.", "aliases": ["--json"]})
    progress: bool = field(default=True, metadata={"help": "A bar."})
    batch_size: int = field(default=32, metadata={"help": "Batch."})
    labels: list[str] = field(default_factory=list, metadata={"help": "Labels."})


def parse(*args: str) -> Example:
    return DataclassParser(Example, prog="example", positional=["texts"]).parse(args)


def test_defaults_are_the_dataclass_defaults():
    assert parse("a") == Example(texts=["a"])


def test_a_bare_yes_no_flag_before_a_positional_does_not_eat_it():
    assert parse("--json", "We talk.", "They shell.") == Example(
        texts=["We talk.", "They shell."], as_json=True)
    assert parse("--json", "-").texts == ["-"]
    assert parse("a", "--json").as_json is True


def test_yes_no_flags_take_a_word_or_a_no_form():
    assert parse("--progress", "false", "a").progress is False
    assert parse("--no-progress", "a").progress is False
    assert parse("--no_progress", "a").progress is False
    assert parse("--no-json", "a").as_json is False
    assert parse("--as-json=yes", "a").as_json is True


def test_both_spellings_of_a_flag_and_its_alias_work():
    assert parse("--batch-size", "4", "a").batch_size == 4
    assert parse("--batch_size", "5", "a").batch_size == 5
    assert parse("--labels", "x", "y", "--", "a").labels == ["x", "y"]


def test_everything_after_a_double_dash_is_positional():
    assert parse("--", "--json").texts == ["--json"]
    assert explicit_bool_values(["--json", "--", "--json"], {"--json"}) == [
        "--json=true", "--", "--json"]


@pytest.mark.parametrize("args", [["--batch", "4", "a"], [], ["a", "--unknown"]])
def test_abbreviations_unknown_flags_and_missing_positionals_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*args)
    assert exit_info.value.code == 2


def test_given_names_only_the_flags_on_the_command_line():
    parser = DataclassParser(Example, prog="example", positional=["texts"])
    assert parser.given(["a", "--batch-size", "32", "--no-progress"]) == {
        "texts": ["a"], "batch_size": 32, "progress": False}


def test_a_positional_that_is_not_a_field_is_refused():
    with pytest.raises(ValueError, match="no field"):
        DataclassParser(Example, prog="example", positional=["text"])
