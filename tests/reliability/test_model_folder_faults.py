"""A corrupted or incomplete model folder: one clear error from every command that loads one.

Each folder is a copy of the tiny model with one thing broken, the way a full disk, an
interrupted copy or a hand edit breaks it. ``detente predict``, ``evaluate``, ``retrain`` and
``demo --model`` must each exit 1 with one ``error:`` line naming the folder, never a
traceback from inside transformers, and must not write anything (no report, no new model).
Loading must not "succeed" with random weights either: transformers fills missing tensors
with random values and builds an empty vocabulary when the tokenizer file is gone.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from serve.cli import app

runner = CliRunner()


def truncate_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def drop_a_tensor(folder: Path) -> None:
    tensors = load_file(folder / "model.safetensors")
    del tensors["stance_head.weight"]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def wrong_shapes(folder: Path) -> None:
    """Weights of another size of encoder under this config (a mixed-up folder)."""
    config = json.loads((folder / "config.json").read_text())
    config["encoder"]["intermediate_size"] = 128
    (folder / "config.json").write_text(json.dumps(config))


def pickle_only(folder: Path) -> None:
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated_weights": (truncate_weights, r"could not load the model in .*: Error while "
                                            r"deserializing header"),
    "empty_weights_file": (lambda f: (f / "model.safetensors").write_bytes(b""),
                           r"could not load the model in"),
    "missing_tensor": (drop_a_tensor, r"do not match its config\.json .*stance_head\.weight"),
    "wrong_shapes": (wrong_shapes, r"do not match its config\.json \(6 tensor\(s\)"),
    "no_weights": (lambda f: (f / "model.safetensors").unlink(), r"has no model\.safetensors"),
    "pickle_weights_only": (pickle_only, r"only pickled weights .*--allow-pickle"),
    "no_config": (lambda f: (f / "config.json").unlink(), r"has no config\.json"),
    "garbage_config": (lambda f: (f / "config.json").write_bytes(b"\x00\xff{garbage"),
                       r"config\.json is not valid JSON"),
    "config_not_an_object": (lambda f: (f / "config.json").write_text("[1, 2]"),
                             r"config\.json is not a model config"),
    "config_without_encoder": (
        lambda f: (f / "config.json").write_text(json.dumps(
            {k: v for k, v in json.loads((f / "config.json").read_text()).items()
             if k != "encoder"})),
        r"could not load the model in .*the config is incomplete"),
    "no_tokenizer": (lambda f: [(f / n).unlink() for n in ("tokenizer.json",
                                                          "tokenizer_config.json")],
                     r"has no tokenizer"),
    "no_vocabulary": (lambda f: (f / "tokenizer.json").unlink(),
                      r"has no tokenizer vocabulary"),
    "garbage_tokenizer": (lambda f: (f / "tokenizer.json").write_text("{not json"),
                          r"could not load the tokenizer in"),
    "not_a_folder": (lambda f: (shutil.rmtree(f), f.write_text("a file")),
                     r"is a file, not a model folder"),
}


@pytest.fixture(scope="module")
def broken_models(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken-models")
    folders = {}
    for name, (corrupt, _) in CORRUPTIONS.items():
        folder = root / name
        shutil.copytree(tiny_model_dir, folder)
        corrupt(folder)
        folders[name] = folder
    return folders


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def commands(model: Path, work: Path, corpus: Path, labelled: Path) -> dict[str, list[str]]:
    # demo: an unresolvable --host makes it exit instead of serving, should loading succeed
    return {
        "predict": ["predict", "--model", str(model), "We are ready to talk."],
        "evaluate": ["evaluate", str(model), "--data", str(corpus), "--train-data", str(corpus),
                     "--report", str(work / "report")],
        "retrain": ["retrain", "--from", str(model), "--data", str(labelled), "--output",
                    str(work / "new"), "--replay-data", str(corpus), "--epochs", "1"],
        "demo": ["demo", "--model", str(model), "--host", "no-such-host.invalid",
                 "--port", str(free_port())],
    }


@pytest.mark.parametrize("command", ["predict", "evaluate", "retrain", "demo"])
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_broken_model_folder_is_one_clear_error(
    tmp_path, monkeypatch, broken_models, corpus_file, labelled_file, command, corruption
):
    monkeypatch.setenv("DETENTE_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    model = broken_models[corruption]
    result = runner.invoke(app, commands(model, work, corpus_file, labelled_file)[command])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    assert re.search(CORRUPTIONS[corruption][1], errors[0]), errors[0]
    assert str(model) in errors[0]
    assert list(work.iterdir()) == []  # no report, no new model, no checkpoints


def test_pickled_weights_load_only_with_allow_pickle(broken_models):
    folder = broken_models["pickle_weights_only"]
    refused = runner.invoke(app, ["predict", "--model", str(folder), "Talks resume."])
    assert refused.exit_code == 1 and "--allow-pickle" in refused.output
    allowed = runner.invoke(app, ["predict", "--model", str(folder), "--allow-pickle", "--json",
                                  "Talks resume."])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout.strip().splitlines()[-1])["text"] == "Talks resume."


@pytest.mark.parametrize("command", ["predict", "evaluate", "retrain", "demo"])
def test_every_command_that_loads_a_model_has_allow_pickle_off_by_default(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--allow-pickle" in result.output and "--no-allow-pickle" in result.output
