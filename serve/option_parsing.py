"""Command-line options from a dataclass: ``HfArgumentParser``, plus what our commands need.

Every ``detente`` command (and ``detente serve``'s settings) declares its options once, as
an ``*Arguments`` dataclass whose fields carry the default and the help text. This module
turns such a class into an argparse parser. It imports transformers, so the CLI imports it
only when a command runs, never for ``detente --help``.

``HfArgumentParser`` does most of it. Three things it lacks, which the commands had before
they were built from dataclasses and which docs and scripts use, are added here:

- positional arguments (``detente score FILE``, ``detente predict TEXT...``): a field named
  in ``positional`` becomes one, with the field's name in capitals as its metavar;
- a ``--no-NAME`` flag for every yes/no field, not only those that default to yes;
- a yes/no flag directly before a positional (``detente predict --json "We talk."``): argparse
  would read the statement as the flag's value, so a flag not followed by a yes/no word is
  given as ``--flag=true``. ``--flag false`` keeps working.

Abbreviated flags (``--lr`` for ``--learning_rate``) are refused, as typer did.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

T = TypeVar("T")

# The words ``string_to_bool`` reads as a yes/no value (case does not matter).
BOOL_WORDS = frozenset({"yes", "true", "t", "y", "1", "no", "false", "f", "n", "0"})


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help; the command's description as written.

    Descriptions are paragraphs wrapped by hand (``detente score --help``); argparse would
    join them into one block. A required option has no default to show.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.required else super()._get_help_string(action)


class DataclassParser(HfArgumentParser):
    """``HfArgumentParser`` for one dataclass, with positional fields and ``--no-`` flags."""

    def __init__(
        self,
        dataclass_type: type,
        *,
        prog: str,
        description: str | None = None,
        positional: Collection[str] = (),
    ) -> None:
        # Read by _parse_dataclass_field, which HfArgumentParser.__init__ calls for each field.
        self.positional = frozenset(positional)
        self.bool_flags: set[str] = set()
        unknown = self.positional - {f.name for f in dataclasses.fields(dataclass_type)}
        if unknown:
            raise ValueError(f"{dataclass_type.__name__} has no field(s) {sorted(unknown)}")
        super().__init__(dataclass_type, prog=prog, description=description,
                         formatter_class=HelpFormatter, allow_abbrev=False)

    def _parse_dataclass_field(self, parser: Any, field: dataclasses.Field) -> None:
        # Overrides HfArgumentParser's per-field hook (transformers 5, which pyproject pins)
        # for the two kinds of field it cannot express; every other field (numbers, text,
        # choices, lists) is left to it. tests/serve/test_cli_parsing.py pins the behaviour.
        if field.name in self.positional:
            add_positional(parser, field)
        elif _without_none(field.type) is bool:
            self.bool_flags.update(add_bool_flags(parser, field))
        else:
            HfArgumentParser._parse_dataclass_field(parser, field)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None):
        if args is not None:
            args = explicit_bool_values(args, self.bool_flags)
        return super().parse_known_args(args, namespace)

    def parse(self, args: Sequence[str]) -> Any:
        """The dataclass for ``args``; argparse reports bad flags and ``--help``, then exits.

        Not ``parse_args_into_dataclasses``: that also reads a ``<program>.args`` file found
        next to the executable, and reports an unknown flag as a ValueError, not a usage error.
        """
        namespace = self.parse_args(list(args))
        return self.dataclass_types[0](**vars(namespace))

    def given(self, args: Sequence[str]) -> dict[str, Any]:
        """The fields ``args`` set explicitly (so that they can win over a config file)."""
        unset = object()
        probe = DataclassParser(self.dataclass_types[0], prog=self.prog,
                                positional=self.positional)
        probe.set_defaults(**{f.name: unset for f in dataclasses.fields(self.dataclass_types[0])})
        namespace, _ = probe.parse_known_args(list(args))
        return {name: value for name, value in vars(namespace).items() if value is not unset}


def parse_arguments(
    dataclass_type: type[T],
    args: Sequence[str],
    *,
    prog: str,
    description: str | None = None,
    positional: Collection[str] = (),
) -> T:
    """``args`` as a ``dataclass_type``: the one way every command reads its options."""
    parser = DataclassParser(dataclass_type, prog=prog, description=description,
                             positional=positional)
    return parser.parse(args)


def own_names(field: dataclasses.Field) -> list[str]:
    """``--name`` and ``--name-with-dashes``, as HfArgumentParser spells a field's flag."""
    names = [f"--{field.name}"]
    if "_" in field.name:
        names.append(f"--{field.name.replace('_', '-')}")
    return names


def aliases(field: dataclasses.Field) -> list[str]:
    """The other spellings in the field's metadata (``--from``, ``-o``)."""
    value = field.metadata.get("aliases", [])
    return [value] if isinstance(value, str) else list(value)


def add_bool_flags(parser: Any, field: dataclasses.Field) -> list[str]:
    """``--name [BOOL]`` (alone: yes) and ``--no-name``; returns the option strings of yes."""
    names = own_names(field) + aliases(field)
    default = False if field.default is dataclasses.MISSING else field.default
    extra = {k: v for k, v in field.metadata.items() if k not in ("aliases", "help")}
    parser.add_argument(*names, type=string_to_bool, nargs="?", const=True, default=default,
                        metavar="BOOL", help=field.metadata.get("help"), **extra)
    negatives = [f"--no_{field.name}", f"--no-{field.name.replace('_', '-')}"]
    negatives += [f"--no-{alias[2:]}" for alias in aliases(field) if alias.startswith("--")]
    parser.add_argument(*dict.fromkeys(negatives), action="store_false", dest=field.name,
                        default=argparse.SUPPRESS, help=f"Same as {names[-1]} false.")
    return names


def add_positional(parser: Any, field: dataclasses.Field) -> None:
    """A positional argument holding ``field``: required unless it has a default."""
    kind = _without_none(field.type)
    has_default = (field.default is not dataclasses.MISSING
                   or field.default_factory is not dataclasses.MISSING)
    kwargs: dict[str, Any] = {"help": field.metadata.get("help"), "metavar": field.name.upper()}
    if typing.get_origin(kind) is list:
        (kind,) = typing.get_args(kind)
        kwargs["nargs"] = "*" if has_default else "+"
    elif has_default:
        kwargs["nargs"] = "?"
    if field.default is not dataclasses.MISSING:
        kwargs["default"] = field.default
    elif field.default_factory is not dataclasses.MISSING:
        kwargs["default"] = field.default_factory()
    parser.add_argument(field.name, type=kind, **kwargs)


def explicit_bool_values(args: Sequence[str], bool_flags: Collection[str]) -> list[str]:
    """``--flag`` as ``--flag=true`` unless a yes/no word follows it (see the module doc)."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":  # everything after it is positional
            return out + list(args[i:])
        following = args[i + 1] if i + 1 < len(args) else None
        if arg in bool_flags and (following is None or following.lower() not in BOOL_WORDS):
            arg = f"{arg}=true"
        out.append(arg)
    return out


def _without_none(kind: Any) -> Any:
    """``X`` for ``X | None``; any other type as it is."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind
