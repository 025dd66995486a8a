"""``--backend auto`` chosen per model on its validation split, and by ``detente train``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from model.backends import cache, quantize, resolve_backend
from model.classifier import Classifier
from model.persistence import weights_hash
from serve.loading import resolve
from tests.conftest import SPLIT_STATEMENTS
from training.backend_selection import (
    MAX_F1_DROP,
    MIN_AGREEMENT,
    SELECTION_MARGIN,
    describe_selection,
    select_backend,
    select_backend_on_file,
)


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("onnx"))
    return folder


def test_selection_on_the_validation_split_is_written_for_these_weights(model_copy,
                                                                        corpus_file):
    selection = select_backend_on_file(model_copy, corpus_file)
    validation = SPLIT_STATEMENTS["validation"]
    assert selection["data"]["statements"] == len(validation)
    assert "validation split" in selection["data"]["source"]

    saved = json.loads((model_copy / "onnx" / "selection.json").read_text())
    assert saved["weights_hash"] == weights_hash(model_copy)
    assert saved["backend"] == selection["backend"]

    by_variant = {c["variant"]: c for c in selection["candidates"]}
    assert by_variant["torch"]["stance_agreement"] == 1.0
    assert by_variant["onnx"]["stance_agreement"] == 1.0  # fp32: the same labels
    assert by_variant["onnx"]["max_abs_prob_diff"] < 1e-4
    assert any(v.startswith("onnx-int8/per-channel") for v in by_variant)
    for row in selection["candidates"]:
        assert row["statements_per_s"] > 0
        assert row["qualifies"] == (row["stance_agreement"] >= MIN_AGREEMENT + SELECTION_MARGIN
                                    and row["macro_f1_drop"] <= MAX_F1_DROP)
    chosen = by_variant[selection["variant"]]
    assert chosen["qualifies"]
    assert chosen["statements_per_s"] == max(
        c["statements_per_s"] for c in selection["candidates"] if c["qualifies"])
    # The ladder stops at the first int8 variant that qualifies.
    int8 = [c for c in selection["candidates"] if c["backend"] == "onnx-int8"]
    assert all(not c["qualifies"] for c in int8[:-1])

    line = describe_selection(selection)
    assert selection["variant"] in line and "stance agreement" in line


def test_auto_then_runs_the_chosen_backend(model_copy, corpus_file):
    selection = select_backend_on_file(model_copy, corpus_file)
    resolved = resolve_backend(model_copy, "auto")
    assert resolved.name == selection["backend"]
    if resolved.name == "onnx-int8":
        assert resolved.int8 == quantize.Int8Config.from_dict(selection["int8"])
        assert resolved.graph.is_file()
    # Only the winner's int8 graph is kept in the cache; no candidate files are left over.
    cached = sorted(p.name for p in (model_copy / "onnx").iterdir())
    int8_files = [n for n in cached if n.startswith("model.int8-")]
    assert len(int8_files) == (1 if selection["backend"] == "onnx-int8" else 0)
    assert not [n for n in cached if n.startswith(".")]
    stance, _ = Classifier.load(model_copy, backend="auto").predict_proba(["We are ready to talk."])
    assert stance.shape == (1, 3)


def test_int8_with_every_encoder_matmul_kept_fp32_qualifies(model_copy, corpus_file):
    """The tiny encoder has 12 MatMuls: excluding them all leaves fp32's labels exactly."""
    selection = select_backend_on_file(model_copy, corpus_file, ladder=(12,))
    int8 = [c for c in selection["candidates"] if c["backend"] == "onnx-int8"]
    assert [c["variant"] for c in int8] == ["onnx-int8/per-channel-fp32-top12"]
    assert len(int8[0]["int8"]["exclude"]) == 12
    assert int8[0]["stance_agreement"] == 1.0 and int8[0]["max_abs_prob_diff"] < 1e-4
    assert int8[0]["macro_f1_drop"] == pytest.approx(0.0) and int8[0]["qualifies"]
    qualifying = [c for c in selection["candidates"] if c["qualifies"]]
    assert len(qualifying) == 3  # torch, onnx and this one: the fastest of them is chosen
    assert selection["variant"] == max(qualifying, key=lambda c: c["statements_per_s"])[
        "variant"]


def test_a_file_without_a_validation_split_is_refused(model_copy, labelled_file):
    with pytest.raises(ValueError, match="never on the test split"):
        select_backend_on_file(model_copy, labelled_file)
    assert not (model_copy / "onnx" / "selection.json").exists()


def test_large_sets_are_sampled_and_blank_rows_skipped(model_copy):
    rows = SPLIT_STATEMENTS["validation"]
    texts = ["", "   "] + [t for t, _, _ in rows]
    gold = [None, None] + [s for _, s, _ in rows]
    selection = select_backend(model_copy, texts, gold, max_rows=5, ladder=(0,), write=False)
    assert selection["data"]["statements"] == 5 == selection["data"]["stance_labelled"]
    assert "file" not in selection
    assert not (model_copy / "onnx" / "selection.json").exists()


def test_ranking_puts_every_encoder_matmul_in_order(model_copy):
    version = weights_hash(model_copy)
    fp32 = cache.ensure_fp32(model_copy, version)
    backend = Classifier.load(model_copy, backend="onnx")
    texts = [t for t, _, _ in SPLIT_STATEMENTS["train"]]
    ranking = quantize.rank_by_quantization_error(fp32, backend.tokenizer, texts, max_length=64)
    nodes = quantize.quantizable_nodes(fp32)
    assert {name for name, _ in ranking} == set(nodes) - set(quantize.head_nodes(nodes))
    scores = np.array([score for _, score in ranking])
    assert (np.diff(scores) <= 0).all() and (scores > 0).all()
    # Depth weighting: the tiny encoder has 2 layers, so layer 0's errors count twice.
    plain = dict(quantize.rank_by_quantization_error(fp32, backend.tokenizer, texts, max_length=64,
                                               depth_weighted=False))
    assert (np.array(list(plain.values())) < 1).all()  # relative errors
    for name, score in ranking:
        factor = 2 if "/layer.0/" in name else 1
        assert score == pytest.approx(factor * plain[name])


def test_measured_sensitivity_of_a_shortlist(model_copy, tmp_path):
    """Each shortlisted node is quantized alone; the ones that move the labels most come first."""
    version = weights_hash(model_copy)
    fp32 = cache.ensure_fp32(model_copy, version)
    backend = Classifier.load(model_copy, backend="onnx")
    texts = [t for t, _, _ in SPLIT_STATEMENTS["train"]]
    nodes = [n for n in quantize.quantizable_nodes(fp32) if n not in quantize.head_nodes([n])]
    shortlist = nodes[:3]
    measured = quantize.rank_sensitive_nodes(fp32, backend.tokenizer, backend.config, texts,
                                       tmp_path / "work", candidates=shortlist)
    assert sorted(name for name, _ in measured) == sorted(shortlist)
    scores = [score for _, score in measured]
    assert scores == sorted(scores, reverse=True) and all(s >= 0 for s in scores)
    assert max(scores) > 0  # int8 moves the probabilities a little
    assert not (tmp_path / "work").exists()  # its probe graphs are cleaned up


def test_detente_train_chooses_the_backend_for_the_model_it_wrote(tmp_path, corpus_file,
                                                                  tiny_encoder_dir):
    from training.arguments import TrainArguments
    from training.trainer import format_summary, train

    def args(output, **kw):
        return TrainArguments(data=str(corpus_file), base_model=str(tiny_encoder_dir),
                              output=str(output), epochs=1, batch_size=8, max_seq_length=48,
                              **kw)

    result = train(args(tmp_path / "with"))
    selection = result.metrics["backend_selection"]
    saved = json.loads((result.output / "onnx" / "selection.json").read_text())
    assert saved["weights_hash"] == weights_hash(result.output)
    assert saved["backend"] == selection["backend"] == resolve_backend(result.output).name
    assert saved["data"]["statements"] == len(SPLIT_STATEMENTS["validation"])
    summary = json.loads((result.output / "training_summary.json").read_text())
    assert summary["backend_selection"]["variant"] == saved["variant"]
    assert "--backend auto ->" in format_summary(result.metrics)

    plain = train(args(tmp_path / "without", select_backend=False))
    assert "backend_selection" not in plain.metrics
    assert not (plain.output / "onnx").exists()
    assert resolve_backend(plain.output).name == "onnx"  # no selection: lossless ONNX fp32


def test_detente_select_backend_command_writes_the_choice(model_copy, corpus_file,
                                                          labelled_file):
    from typer.testing import CliRunner

    from serve.cli import app

    runner = CliRunner()
    assert cache.read_selection(model_copy, weights_hash(model_copy)) is None
    result = runner.invoke(app, ["select-backend", "--model", str(model_copy),
                                 "--data", str(corpus_file)])
    assert result.exit_code == 0, result.output
    assert "--backend auto ->" in result.output and "selection.json" in result.output
    selection = cache.read_selection(model_copy, weights_hash(model_copy))
    assert selection["data"]["statements"] == len(SPLIT_STATEMENTS["validation"])
    assert resolve_backend(model_copy, "auto").name == selection["backend"]

    refused = runner.invoke(app, ["select-backend", "--model", str(model_copy),
                                  "--data", str(labelled_file)])
    assert refused.exit_code == 1 and "split=validation" in refused.output


def test_auto_redoes_a_missing_choice_for_the_default_model(tiny_model_dir, tmp_path,
                                                           monkeypatch, capsys):
    """A newer export format drops the old choice; the default model gets a new one, once."""
    from model.paths import default_model_dir

    monkeypatch.setenv("DETENTE_HOME", str(tmp_path / "home"))
    folder = default_model_dir()
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("onnx"))
    resolved = resolve(None, "auto")
    assert "Choosing the fastest scoring backend" in capsys.readouterr().err
    selection = cache.read_selection(folder, weights_hash(folder))
    assert selection is not None and "validation split" in selection["data"]["source"]
    assert resolved.name == selection["backend"]
    resolve(None, "auto")  # now it is there: not chosen again
    assert "Choosing" not in capsys.readouterr().err
    # a model named by its folder is never re-benchmarked behind the user's back
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other, ignore=shutil.ignore_patterns("onnx"))
    assert resolve_backend(other, "auto").name == "onnx"
    assert cache.read_selection(other, weights_hash(other)) is None
