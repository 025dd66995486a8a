"""ONNX Runtime backends: fp32 equal to torch, int8 measured, a cache that follows the weights."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from model.backends import cache, onnx_runtime, quantize, resolve_backend
from model.classifier import Classifier
from training.backend_selection import choose_fastest, is_acceptable

TEXTS = [
    "Talks.",
    "We are ready to sit down with them tomorrow and talk about a ceasefire.",
    "The junta shelled the villages again and murdered dozens of civilians, the governor "
    "said on Sunday, adding that the rebels had ignored every call for a humanitarian pause.",
    "Two rockets struck the port district overnight.",
    "It is not us who walked away from the talks, it is them.",
    "word " * 120,  # longer than the tiny model's 64 tokens: truncated the same way
]


@pytest.fixture(scope="module")
def model_copy(tiny_model_dir, tmp_path_factory):
    """A private copy, so the ONNX cache written here is not shared with other tests."""
    folder = tmp_path_factory.mktemp("onnx-model") / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


@pytest.fixture(scope="module")
def torch_probs(model_copy):
    return Classifier.load(model_copy, backend="torch").predict_proba(TEXTS * 3, batch_size=4)


def test_onnx_fp32_matches_torch_within_1e4_at_any_batch_shape(model_copy, torch_probs):
    backend = Classifier.load(model_copy, backend="onnx")
    assert backend.backend_name == "onnx"
    for batch_size in (1, 3, 32):
        stance, sentiment = backend.predict_proba(TEXTS * 3, batch_size=batch_size)
        np.testing.assert_allclose(stance, torch_probs[0], atol=1e-4)
        np.testing.assert_allclose(sentiment, torch_probs[1], atol=1e-4)
    shapes = {i.name: i.shape for i in backend.backend.session.get_inputs()}
    assert shapes["input_ids"] == ["batch", "sequence"]
    assert set(shapes) == {"input_ids", "attention_mask", "token_type_ids"}


def test_export_is_cached_and_redone_when_the_weights_change(model_copy, tmp_path):
    from model import load_model, save_model
    from model.persistence import weights_hash

    folder = tmp_path / "model"
    shutil.copytree(model_copy, folder)
    first = resolve_backend(folder, "onnx")
    stamp = first.graph.stat().st_mtime_ns
    assert resolve_backend(folder, "onnx").graph.stat().st_mtime_ns == stamp  # reused
    index = json.loads((folder / "onnx" / "cache.json").read_text())
    assert index["weights_hash"] == weights_hash(folder)

    model, tokenizer = load_model(folder)
    with torch.no_grad():
        model.stance_head.bias += torch.tensor([3.0, 0.0, 0.0])
    save_model(model, tokenizer, folder)
    second = resolve_backend(folder, "onnx")
    assert second.version != first.version
    assert json.loads((folder / "onnx" / "cache.json").read_text())["weights_hash"] == \
        second.version
    onnx_stance, _ = Classifier.load(folder, backend="onnx").predict_proba(TEXTS)
    torch_stance, _ = Classifier.load(folder, backend="torch").predict_proba(TEXTS)
    np.testing.assert_allclose(onnx_stance, torch_stance, atol=1e-4)


def test_graph_uses_plain_attention_and_an_older_export_is_redone(model_copy, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_copy, folder)
    resolved = resolve_backend(folder, "onnx")
    ops = {node.op_type for node in onnx.load(str(resolved.graph)).graph.node}
    assert "Softmax" in ops and "IsNaN" not in ops  # eager attention, not SDPA's guards
    cache.write_selection(folder, resolved.version, {"backend": "onnx-int8", "int8": None})
    assert resolve_backend(folder, "auto").name == "onnx-int8"

    index_path = folder / "onnx" / "cache.json"
    for path in (index_path, folder / "onnx" / cache.SELECTION_FILE):
        record = json.loads(path.read_text())
        del record["graph_format"]  # as detente 0.1 left them
        path.write_text(json.dumps(record))
    stamp = resolved.graph.stat().st_mtime_ns
    again = resolve_backend(folder, "auto")
    assert again.name == "onnx"  # the old selection went with the old graphs
    assert again.graph.stat().st_mtime_ns != stamp  # exported again
    assert not (folder / "onnx" / cache.SELECTION_FILE).exists()
    assert json.loads(index_path.read_text())["graph_format"] == cache.GRAPH_FORMAT


def test_int8_runs_and_its_agreement_with_fp32_is_measured(model_copy, torch_probs):
    backend = Classifier.load(model_copy, backend="onnx-int8")
    assert backend.backend_name == "onnx-int8"
    stance, _ = backend.predict_proba(TEXTS * 3)
    agreement = float((stance.argmax(1) == torch_probs[0].argmax(1)).mean())
    assert 0.0 <= agreement <= 1.0
    assert np.abs(stance - torch_probs[0]).max() < 0.05  # quantized, yet close
    graph = onnx.load(str(resolve_backend(model_copy, "onnx-int8").graph))
    ops = {node.op_type for node in graph.graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLinear"}
    heads = [n for n in graph.graph.node if "stance_head" in n.name]
    assert heads and {n.op_type for n in heads} <= {"Gemm", "MatMul", "Add"}  # heads stay fp32


def test_excluded_nodes_stay_fp32(model_copy, tmp_path):
    fp32 = cache.ensure_fp32(model_copy, resolve_backend(model_copy, "torch").version)
    nodes = quantize.quantizable_nodes(fp32)
    keep = [n for n in nodes if "layer.1/output/dense" in n]
    assert keep
    target = tmp_path / "q.onnx"
    quantize.quantize_int8(fp32, target, quantize.Int8Config(per_channel=True, exclude=tuple(keep)))
    names = {n.name: n.op_type for n in onnx.load(str(target)).graph.node}
    assert names[keep[0]] == "MatMul"
    assert quantize.Int8Config(True, tuple(keep)).tag() != quantize.Int8Config(True).tag()


def test_auto_follows_a_selection_for_these_weights_only(model_copy, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_copy, folder)
    assert resolve_backend(folder, "auto").name == "onnx"  # no benchmark yet: lossless onnx
    version = resolve_backend(folder, "torch").version
    cache.write_selection(folder, version, {"backend": "onnx-int8",
                                         "int8": {"per_channel": True, "exclude": []}})
    assert resolve_backend(folder, "auto").name == "onnx-int8"
    cache.write_selection(folder, "someothermodel", {"backend": "torch"})
    assert resolve_backend(folder, "auto").name == "onnx"  # stale selection ignored


def test_selection_rule():
    torch_fp32 = {"backend": "torch", "statements_per_s": 90, "stance_agreement": 1.0,
                  "macro_f1_drop": 0.0}
    onnx_fp32 = {"backend": "onnx", "statements_per_s": 120, "stance_agreement": 1.0,
                 "macro_f1_drop": 0.0}
    int8_bad = {"backend": "onnx-int8", "statements_per_s": 200, "stance_agreement": 0.93,
                "macro_f1_drop": 0.001}
    int8_f1 = {"backend": "onnx-int8", "statements_per_s": 190, "stance_agreement": 0.995,
               "macro_f1_drop": 0.006}
    int8_ok = {"backend": "onnx-int8", "statements_per_s": 180, "stance_agreement": 0.992,
               "macro_f1_drop": 0.004}
    assert choose_fastest([torch_fp32, onnx_fp32, int8_bad, int8_f1]) is onnx_fp32
    assert choose_fastest([torch_fp32, onnx_fp32, int8_bad, int8_f1, int8_ok]) is int8_ok
    # choosing asks for a margin over the rule: 99.2 % agreement passes the rule, not the choice
    assert choose_fastest([torch_fp32, onnx_fp32, int8_ok], margin=0.005) is onnx_fp32
    assert choose_fastest([torch_fp32, onnx_fp32, {**int8_ok, "stance_agreement": 0.996}],
                          margin=0.005)["statements_per_s"] == 180
    no_gold = {**int8_ok, "macro_f1_drop": None}
    assert not is_acceptable(no_gold) and is_acceptable({**onnx_fp32, "macro_f1_drop": None})


def test_score_file_with_onnx_matches_torch(model_copy, tmp_path):
    from serve.scoring import score_file

    src = tmp_path / "in.csv"
    pd.DataFrame({"text": TEXTS * 2}).to_csv(src, index=False)
    score_file(src, tmp_path / "t.parquet", model=model_copy, backend="torch", progress=False)
    score_file(src, tmp_path / "o.parquet", model=model_copy, backend="onnx", progress=False)
    a, b = pd.read_parquet(tmp_path / "t.parquet"), pd.read_parquet(tmp_path / "o.parquet")
    columns = ["p_pro_negotiation", "p_accusatory", "p_neutral", "sentiment_score"]
    np.testing.assert_allclose(a[columns].to_numpy(), b[columns].to_numpy(), atol=1e-4)
    assert (a["model_version"] == b["model_version"]).all()


def test_sessions_block_instead_of_spinning_unless_asked(model_copy, monkeypatch):
    graph = resolve_backend(model_copy, "onnx").graph

    def spinning(session) -> str:
        return session.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning")

    monkeypatch.delenv("DETENTE_ORT_SPIN", raising=False)
    assert spinning(onnx_runtime.make_session(graph)) == "0"
    assert spinning(onnx_runtime.make_session(graph, spin=True)) == "1"
    monkeypatch.setenv("DETENTE_ORT_SPIN", "1")
    assert spinning(onnx_runtime.make_session(graph)) == "1"
