"""``--engine ray`` gives the local engine's output (labels equal, probabilities within 1e-5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra (detente[ray])")

from serve.scoring import score_file  # noqa: E402

PROBS = ["p_pro_negotiation", "p_accusatory", "p_neutral", "sentiment_score"]
TEXTS = [
    "We are ready to sit down with them tomorrow and talk about a ceasefire.",
    "The junta shelled the villages again and murdered dozens of civilians.",
    "Two rockets struck the port district overnight.",
    "It is not us who walked away from the talks, it is them. " * 12,  # windowed
]


@pytest.fixture(scope="module")
def local_ray():
    from serve.ray_engine import init_ray

    init_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_copy(tiny_model_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-model") / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


def rows(n: int) -> list[dict]:
    out = [{"doc": f"d{i}", "text": f"{TEXTS[i % 4]} ({i})", "n": i} for i in range(n)]
    out[5]["text"] = ""
    out[7]["text"] = None
    out[9]["text"] = 17
    del out[11]["text"]
    return out


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"doc": str, "text": str})
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_parquet(path)


@pytest.mark.parametrize(("in_fmt", "out_fmt", "backend"), [
    ("jsonl", "parquet", "torch"),
    ("csv", "csv", "onnx"),
    ("parquet", "jsonl", "torch"),
])
def test_ray_engine_equals_local_engine(local_ray, model_copy, tmp_path, in_fmt, out_fmt,
                                        backend):
    data = rows(45)
    src = tmp_path / f"in.{in_fmt}"
    if in_fmt == "jsonl":
        src.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    else:
        frame = pd.DataFrame(data).astype({"text": "string"})
        frame.loc[9, "text"] = "17"
        if in_fmt == "csv":
            frame.to_csv(src, index=False)
        else:
            frame.to_parquet(src, index=False)
    common = {"model": model_copy, "backend": backend, "chunk_size": 8, "progress": False}
    local = score_file(src, tmp_path / f"local.{out_fmt}", **common)
    remote = score_file(src, tmp_path / f"ray.{out_fmt}", engine="ray", **common)
    assert remote.rows == local.rows == 45
    assert remote.errors == local.errors and remote.windowed_rows == local.windowed_rows > 0
    a, b = read(tmp_path / f"local.{out_fmt}"), read(tmp_path / f"ray.{out_fmt}")
    assert list(a.columns) == list(b.columns)
    assert a["id"].tolist() == b["id"].tolist() == list(range(1, 46))
    for column in ("doc", "stance", "sentiment", "error", "model_version"):
        assert a[column].fillna("").tolist() == b[column].fillna("").tolist(), column
    np.testing.assert_allclose(a[PROBS].to_numpy(float), b[PROBS].to_numpy(float), atol=1e-5)
    assert a["error"].notna().sum() == (4 if in_fmt == "jsonl" else 3)


def test_ray_engine_refuses_resume(local_ray, model_copy, tmp_path):
    from model.errors import DataError

    src = tmp_path / "in.csv"
    pd.DataFrame({"text": TEXTS}).to_csv(src, index=False)
    with pytest.raises(DataError, match="not supported with --engine ray"):
        score_file(src, tmp_path / "o.csv", model=model_copy, engine="ray", resume=True)
