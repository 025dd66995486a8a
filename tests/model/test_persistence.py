from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from model import ModelLoadError, load_model, save_model
from model.persistence import weights_hash


def test_round_trip_is_exact_and_uses_safetensors(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    model.config.stance_temperature = 1.7
    save_model(model, tokenizer, tmp_path / "copy")
    assert (tmp_path / "copy" / "model.safetensors").is_file()
    assert not (tmp_path / "copy" / "pytorch_model.bin").exists()
    again, _ = load_model(tmp_path / "copy")
    assert again.config.stance_temperature == pytest.approx(1.7)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    # model_version is a content hash: the same weights saved twice hash alike, and the
    # temperature (config only) does not change it, but any weight change does.
    save_model(again, tokenizer, tmp_path / "second")
    assert weights_hash(tmp_path / "second") == weights_hash(tmp_path / "copy")
    with torch.no_grad():
        again.stance_head.bias[0] += 1e-3
    save_model(again, tokenizer, tmp_path / "changed")
    assert weights_hash(tmp_path / "changed") != weights_hash(tmp_path / "copy")


def test_missing_folder_and_missing_files_give_clear_errors(tiny_model_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        load_model(broken)


def test_truncated_weights_give_a_clear_error(tiny_model_dir, tmp_path):
    broken = tmp_path / "truncated"
    shutil.copytree(tiny_model_dir, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="could not load"):
        load_model(broken)


def test_pickle_weights_are_refused_unless_allowed(tiny_model_dir, tmp_path):
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, pickled)
    state = load_file(pickled / "model.safetensors")
    torch.save(state, pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="pickled"):
        load_model(pickled)
    model, _ = load_model(pickled, allow_pickle=True)
    assert model.config.model_type == "detente"


def test_a_non_detente_folder_is_named_as_such(tiny_encoder_dir):
    with pytest.raises(ModelLoadError, match="not a detente model"):
        load_model(tiny_encoder_dir)


def test_loading_prints_no_weight_progress_bar_and_restores_the_setting(tiny_model_dir, capfd):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    load_model(tiny_model_dir)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # other bars (training, downloads) unchanged
    hf_logging.disable_progress_bar()
    load_model(tiny_model_dir)
    assert not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
