"""`detente serve --engine ray`: one local Ray Serve replica answers like the local engine."""

from __future__ import annotations

import time

import httpx
import pytest

pytest.importorskip("ray.serve", reason="--engine ray needs the ray extra (detente[ray])")

from fastapi.testclient import TestClient  # noqa: E402

from serve.api.app import create_app  # noqa: E402
from serve.api.settings import ServeArguments  # noqa: E402
from tests.serve.conftest import free_port  # noqa: E402

TEXTS = ["We are ready to sit down with them tomorrow and talk about a ceasefire.", "",
         "The junta shelled the villages again and murdered dozens of civilians."]


def test_a_local_ray_serve_replica_answers_like_the_local_engine(tiny_model_dir):
    from serve.api import ray_deployment

    settings = ServeArguments(model=str(tiny_model_dir), port=free_port(), engine="ray",
                              replicas=1, max_batch_size=8)
    url = f"http://127.0.0.1:{settings.port}"
    ray_deployment.start(settings, api_key="ray-key")
    try:
        headers = {"Authorization": "Bearer ray-key"}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("the Ray Serve replica did not become ready in 180 s")
        response = httpx.post(url + "/v1/classify", json={"texts": TEXTS}, headers=headers,
                              timeout=60)
        assert response.status_code == 200, response.text
        assert httpx.post(url + "/v1/classify", json={"texts": TEXTS},
                          timeout=60).status_code == 401
        info = httpx.get(url + "/v1/model", headers=headers, timeout=30).json()
        metrics = httpx.get(url + "/metrics", timeout=30).text  # the replica's own metrics
    finally:
        ray_deployment.stop()
    assert info["engine"] == "ray"
    assert 'detente_statements_total{result="scored"} 2.0' in metrics

    local = create_app(ServeArguments(model=str(tiny_model_dir), demo=False))
    with TestClient(local) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = client.post("/v1/classify", json={"texts": TEXTS}).json()
    got = response.json()
    assert got["model_version"] == expected["model_version"]
    for mine, theirs in zip(got["results"], expected["results"], strict=True):
        assert mine["stance"] == theirs["stance"] and mine["error"] == theirs["error"]
        if mine["error"] is None:
            assert mine["stance_probs"] == pytest.approx(theirs["stance_probs"], abs=1e-5)
            assert mine["sentiment_score"] == pytest.approx(theirs["sentiment_score"], abs=1e-5)
