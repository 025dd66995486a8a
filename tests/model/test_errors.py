"""``one_line``: the one helper every front end uses to show an error as one line."""

from __future__ import annotations

from model.errors import one_line


def test_one_line_takes_the_first_non_blank_line():
    assert one_line(ValueError("\n  bad row 3  \nTraceback ...\n")) == "bad row 3"


def test_one_line_last_takes_the_cause_a_library_puts_at_the_end():
    err = RuntimeError("Task failed\nTraceback (most recent call last):\n  ...\n"
                       "OSError: disk full\n")
    assert one_line(err, last=True) == "OSError: disk full"


def test_one_line_names_the_type_of_an_empty_message_and_shortens_long_ones():
    assert one_line(KeyError()) == "KeyError"
    assert one_line(KeyError(), last=True) == "KeyError"
    assert one_line(ValueError("x" * 500), limit=10) == "xxxxxxx..."
