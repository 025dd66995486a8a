"""The service in process (starlette's TestClient, the tiny model): every route, every error.

The model is real (the tiny model's ``auto`` backend, ONNX fp32); apps share one loaded
model so each test does not reload it. Only the 500 test injects a fault, in a subclass
that fails on one marker text, because no real input makes scoring raise.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time

import pytest
from fastapi.testclient import TestClient

from serve.api.app import create_app
from serve.api.schemas import ClassifyResponse, ErrorResponse, ModelInfo
from serve.api.scorer import LoadedModel
from serve.api.settings import ServeArguments
from serve.scored_rows import score_texts

TEXTS = [
    "We are ready to sit down with them tomorrow and talk about a ceasefire.",
    "",
    "The junta shelled the villages again and murdered dozens of civilians.",
    "   ",
    "Two rockets struck the port district overnight.",
]
LONG = "The ministry accused the rebels of shelling the airport again. " * 40  # windowed


@pytest.fixture(scope="module")
def loaded(tiny_model_dir) -> LoadedModel:
    return LoadedModel.load(tiny_model_dir)


def start(client: TestClient, timeout: float = 60) -> TestClient:
    """Wait (bounded) until /ready says 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return client
        time.sleep(0.02)
    raise AssertionError(f"not ready after {timeout} s: {client.get('/ready').json()}")


def client_for(loaded: LoadedModel, api_key: str | None = None, **settings) -> TestClient:
    settings.setdefault("demo", False)
    app = create_app(ServeArguments(**settings), api_key=api_key, model=loaded)
    return TestClient(app)


@pytest.fixture(scope="module")
def client(loaded):
    with client_for(loaded) as c:
        yield start(c)


def classify(client: TestClient, body, **kwargs):
    return client.post("/v1/classify", json=body, **kwargs)


# ----------------------------------------------------------------------------- classify


def test_results_come_in_order_with_the_scoring_numbers(client, loaded):
    response = classify(client, {"texts": TEXTS + [LONG]})
    assert response.status_code == 200
    body = response.json()
    ClassifyResponse.model_validate(body)  # the documented schema
    assert body["model_version"] == loaded.version
    results = body["results"]
    assert len(results) == len(TEXTS) + 1
    expected = score_texts(TEXTS + [LONG], loaded.classifier)
    labels = loaded.labels
    for i, result in enumerate(results):
        assert set(result) == {"stance", "stance_probs", "sentiment", "sentiment_probs",
                               "sentiment_score", "error"}
        if expected.errors[i] is not None:
            continue
        assert result["error"] is None
        assert list(result["stance_probs"]) == labels["stance"]
        assert list(result["sentiment_probs"]) == labels["sentiment"]
        for j, label in enumerate(labels["stance"]):
            assert result["stance_probs"][label] == pytest.approx(expected.stance[i, j], abs=1e-5)
        assert result["stance"] == labels["stance"][int(expected.stance[i].argmax())]
        assert result["sentiment"] == labels["sentiment"][int(expected.sentiment[i].argmax())]
        probs = result["sentiment_probs"]
        assert result["sentiment_score"] == pytest.approx(probs["positive"] - probs["negative"],
                                                          abs=1e-6)
        assert math.fsum(result["stance_probs"].values()) == pytest.approx(1.0, abs=1e-5)


def test_empty_texts_keep_their_place_with_the_score_error(client):
    results = classify(client, {"texts": TEXTS}).json()["results"]
    assert results[1] == {"stance": None, "stance_probs": None, "sentiment": None,
                          "sentiment_probs": None, "sentiment_score": None,
                          "error": "'text' is empty"}
    assert results[3]["error"] == "'text' is blank (only white space)"
    assert [r["error"] is None for r in results] == [True, False, True, False, True]


def test_a_single_string_is_a_list_of_one(client):
    one = classify(client, {"texts": TEXTS[0]}).json()["results"]
    many = classify(client, {"texts": [TEXTS[0]]}).json()["results"]
    assert len(one) == 1 and one[0]["stance"] == many[0]["stance"]
    assert one[0]["stance_probs"] == pytest.approx(many[0]["stance_probs"], abs=1e-6)


def test_an_empty_list_gets_no_results(client):
    assert classify(client, {"texts": []}).json()["results"] == []


def test_explain_adds_the_word_attributions_of_the_demo(client, loaded):
    text = "They shelled the port, and we still call for talks."
    body = classify(client, {"texts": [text, ""], "explain": True}).json()
    ClassifyResponse.model_validate(body)
    results = body["results"]
    explanation = results[0]["explanation"]
    assert explanation["label"] == results[0]["stance"]
    words = [w["text"] for w in explanation["words"]]
    assert words == ["They", "shelled", "the", "port", "and", "we", "still", "call", "for",
                     "talks"]
    for word in explanation["words"]:
        assert text[word["start"]:word["end"]] == word["text"]
        assert 0.0 <= word["probability_without"] <= 1.0
    assert "Word occlusion" in explanation["summary"]
    assert results[1]["explanation"] is None and results[1]["error"]
    direct = loaded.explain(text, results[0]["stance"])
    assert [w["score"] for w in explanation["words"]] == pytest.approx(
        [w["score"] for w in direct["words"]], abs=1e-5)


def test_without_explain_there_is_no_explanation_field(client):
    result = classify(client, {"texts": ["Talks resume on Monday."]}).json()["results"][0]
    assert "explanation" not in result


# ----------------------------------------------------------------------------- other routes


def test_model_route_has_the_card_labels_version_backend_and_limits(client, loaded):
    info = client.get("/v1/model").json()
    ModelInfo.model_validate(info)
    assert info["model_version"] == loaded.version
    assert info["backend"] == loaded.backend_name == "onnx"  # the tiny model's auto choice
    assert info["labels"] == {"stance": ["pro_negotiation", "accusatory", "neutral"],
                              "sentiment": ["negative", "neutral", "positive"]}
    assert info["limits"] == {"max_texts": 256, "max_chars": 100_000,
                              "max_body_bytes": 4 * 1024 * 1024, "max_queue": 1024,
                              "timeout_s": 30.0, "max_batch_size": 64, "max_wait_ms": 5.0}
    assert info["engine"] == "local" and info["max_seq_length"] == 64
    assert "metrics" in info and "card" in info


def test_health_ready_and_metrics(client):
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    classify(client, {"texts": ["Talks resume on Monday.", ""]})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for name in ("detente_requests_total", "detente_request_duration_seconds_bucket",
                 "detente_statements_total", "detente_batch_size_bucket",
                 "detente_queue_depth", "detente_rejected_requests_total",
                 "detente_model_ready 1.0"):
        assert name in text, name
    assert 'detente_requests_total{method="POST",route="/v1/classify",status="200"}' in text
    assert 'detente_statements_total{result="error"}' in text


def test_openapi_documents_the_models_with_examples(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"ClassifyRequest", "ClassifyResponse", "StatementResult", "ErrorResponse",
            "ModelInfo"} <= set(schemas)
    assert schemas["ClassifyRequest"]["examples"]
    responses = spec["paths"]["/v1/classify"]["post"]["responses"]
    assert {"200", "401", "413", "422", "429", "500", "504"} <= set(responses)
    assert client.get("/docs").status_code == 200


def test_root_redirects_to_the_docs_without_the_demo(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/docs"


def test_every_response_carries_a_request_id(client):
    response = classify(client, {"texts": ["x"]}, headers={"X-Request-ID": "job-42.a"})
    assert response.headers["x-request-id"] == "job-42.a"
    bad = classify(client, {"texts": [1]}, headers={"X-Request-ID": "not ok; <script>"})
    assert bad.headers["x-request-id"] != "not ok; <script>"  # an unsafe id is replaced
    assert re.fullmatch(r"[0-9a-f]{8}-\d{7,}", bad.headers["x-request-id"])
    assert bad.json()["request_id"] == bad.headers["x-request-id"]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"texts": ["ok", 3]}, "texts[1]", "should be a string, not number"),
    ({"texts": ["ok", None]}, "texts[1]", "should be a string, not null"),
    ({"texts": {"a": 1}}, "texts", "should be a list of strings"),
    ({"texts": ["ok"], "explain": "yes"}, "explain", "should be true or false, not string"),
    ({"texts": ["ok"], "explian": True}, "explian", "is not a field"),
    ({"text": "ok"}, "texts", "texts is required"),
    (["ok"], "body", "should be a JSON object"),
])
def test_wrong_types_are_422_naming_the_field(client, body, field, words):
    response = classify(client, body)
    assert response.status_code == 422
    error = response.json()
    assert error["field"] == field and words in error["error"]
    assert error["type"] == "invalid_request" and error["request_id"]


@pytest.mark.parametrize(("raw", "words"), [
    (b'{"texts": ["ok",]}', "not valid JSON"),
    (b"", "has no body"),
    (b'{"texts": ["caf\xe9"]}', "not valid UTF-8 (byte 15"),
])
def test_invalid_json_or_utf8_is_422(client, raw, words):
    response = client.post("/v1/classify", content=raw,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert words in response.json()["error"] and response.json()["field"] == "body"


def test_a_body_that_is_not_json_is_422(client):
    response = client.post("/v1/classify", content=b"texts=hello",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 422 and "application/json" in response.json()["error"]


def test_lone_surrogates_keep_their_place_like_in_detente_score(client):
    response = client.post("/v1/classify", content=b'{"texts": ["ok", "bad \\ud800"]}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert "not valid Unicode" in response.json()["results"][1]["error"]


def test_limits_are_413_naming_the_field(loaded):
    with client_for(loaded, max_texts=3, max_chars=50, max_body_bytes=2000) as c:
        start(c)
        too_many = classify(c, {"texts": ["a", "b", "c", "d"]})
        assert too_many.status_code == 413 and too_many.json()["field"] == "texts"
        assert "limit is 3" in too_many.json()["error"]
        too_long = classify(c, {"texts": ["short", "x" * 51]})
        assert too_long.status_code == 413 and too_long.json()["field"] == "texts[1]"
        too_big = classify(c, {"texts": ["y" * 30] * 3, "pad": "z" * 3000})
        assert too_big.status_code == 413 and too_big.json()["field"] == "body"

        def chunks():  # no Content-Length: counted as it arrives
            yield b'{"texts": ["'
            for _ in range(10):
                yield b"w" * 500
            yield b'"]}'

        chunked = c.post("/v1/classify", content=chunks(),
                         headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413 and "more than" in chunked.json()["error"]
        assert classify(c, {"texts": ["a", "b", "c"]}).status_code == 200
        metrics = c.get("/metrics").text
        assert 'detente_rejected_requests_total{reason="too_large"} 4.0' in metrics


def test_timeout_is_504(loaded):
    with client_for(loaded, timeout_s=0.001) as c:
        start(c)
        response = classify(c, {"texts": [LONG] * 8})
        assert response.status_code == 504 and response.json()["type"] == "timeout"
        assert 'reason="timeout"} 1.0' in c.get("/metrics").text


def test_an_over_full_queue_is_429_with_retry_after(loaded):
    # max_batch_size 1 and long texts: each request's batch takes a while, so the others wait
    with client_for(loaded, max_queue=4, max_batch_size=1) as c:
        start(c)
        responses = []
        lock = threading.Lock()

        def send() -> None:
            r = classify(c, {"texts": [LONG] * 4})
            with lock:
                responses.append(r)

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        codes = sorted(r.status_code for r in responses)
        assert len(codes) == 8 and set(codes) <= {200, 429} and 429 in codes and 200 in codes
        full = next(r for r in responses if r.status_code == 429)
        assert int(full.headers["retry-after"]) >= 1 and full.json()["type"] == "queue_full"
        assert classify(c, {"texts": ["Still serving."]}).status_code == 200


class FailsOnMarker(LoadedModel):
    """Fault injection: the real model, except that a batch holding MARKER raises."""

    MARKER = "__fail this batch__"

    def score(self, texts, batch_size=32):
        if self.MARKER in texts:
            raise RuntimeError("injected fault")
        return super().score(texts, batch_size)


def test_a_failed_batch_is_500_with_the_request_id_and_the_server_goes_on(loaded):
    failing = FailsOnMarker(loaded.folder, loaded.classifier)
    app = create_app(ServeArguments(demo=False), model=failing)
    with TestClient(app) as c:
        start(c)
        response = classify(c, {"texts": ["fine", FailsOnMarker.MARKER]})
        assert response.status_code == 500
        body = response.json()
        assert body["type"] == "batch_failed" and body["request_id"] in body["error"]
        assert response.headers["x-request-id"] == body["request_id"]
        assert classify(c, {"texts": ["fine"]}).status_code == 200
        assert c.get("/health").status_code == 200


def test_unknown_routes_are_json_404(client):
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["type"] == "not_found"


# ----------------------------------------------------------------------------- auth


def test_without_a_key_v1_is_open(client):
    assert classify(client, {"texts": ["x"]}).status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic s3cret-key-123",
                                    "Bearer", "s3cret-key-123"])
def test_with_a_key_v1_needs_the_bearer_token(loaded, header):
    with client_for(loaded, api_key="s3cret-key-123") as c:
        start(c)
        headers = {"Authorization": header} if header else {}
        denied = classify(c, {"texts": ["x"]}, headers=headers)
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert denied.json()["type"] == "unauthorized"
        assert c.get("/v1/model", headers=headers).status_code == 401
        good = {"Authorization": "Bearer s3cret-key-123"}
        assert classify(c, {"texts": ["x"]}, headers=good).status_code == 200
        assert c.get("/v1/model", headers=good).status_code == 200
        for open_route in ("/health", "/ready", "/metrics"):
            assert c.get(open_route).status_code == 200, open_route


def test_auth_is_checked_before_the_body_is_read(loaded):
    with client_for(loaded, api_key="k", max_body_bytes=10) as c:
        start(c)
        assert classify(c, {"texts": ["x" * 100]}).status_code == 401


# ----------------------------------------------------------------------------- loading


def test_ready_is_503_and_classify_says_loading_until_the_model_is_loaded(tiny_model_dir):
    app = create_app(ServeArguments(model=str(tiny_model_dir), demo=False))
    with TestClient(app) as c:
        first = c.get("/ready")
        early = classify(c, {"texts": ["x"]})
        start(c)
        assert classify(c, {"texts": ["x"]}).status_code == 200
    # Loading takes a while (tokenizer, ONNX session); the first answers came before it.
    assert first.status_code == 503 and first.json()["status"] == "loading"
    assert early.status_code == 503 and early.headers["retry-after"]
    assert early.json()["type"] == "model_loading"


def test_a_model_that_fails_to_load_is_reported(tmp_path):
    failures = []
    app = create_app(ServeArguments(model=str(tmp_path / "missing"), demo=False),
                     on_load_failure=failures.append)
    with TestClient(app) as c:
        deadline = time.monotonic() + 30
        while not failures and time.monotonic() < deadline:
            time.sleep(0.02)
        ready = c.get("/ready")
        assert ready.status_code == 503 and "does not exist" in ready.json()["error"]
        assert c.get("/health").status_code == 503
        assert classify(c, {"texts": ["x"]}).json()["type"] == "model_failed"
    assert failures


def test_the_demo_is_mounted_at_demo_from_the_same_model_folder(loaded):
    with client_for(loaded, demo=True) as c:
        start(c)
        assert c.get("/", follow_redirects=False).headers["location"] == "/demo/"
        page = c.get("/demo/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        config = c.get("/demo/config").json()
        assert any(d.get("api_name") == "predict" for d in config["dependencies"])
        assert c.app.state.service.model.classifier.path.resolve() == loaded.folder


def test_the_json_error_shape_is_documented(client):
    body = classify(client, {"texts": [1]}).json()
    ErrorResponse.model_validate(body)
    assert set(body) == {"error", "type", "field", "request_id"}
    assert json.loads(json.dumps(body)) == body


# ----------------------------------------------------------------------------- batching


def metric_value(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_lone_request_does_not_wait_for_company(loaded):
    with client_for(loaded, max_wait_ms=3000) as c:
        start(c)
        started = time.perf_counter()
        assert classify(c, {"texts": ["Talks resume on Monday."]}).status_code == 200
        assert time.perf_counter() - started < 1.5  # not the 3 s max_wait


def test_concurrent_requests_share_model_batches(loaded):
    with client_for(loaded, max_wait_ms=50, max_batch_size=64) as c:
        start(c)
        results: list[dict] = []
        lock = threading.Lock()

        def send(i: int) -> None:
            body = classify(c, {"texts": [f"Statement number {i} about the talks."]}).json()
            with lock:
                results.append(body)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(results) == 24 and all(len(r["results"]) == 1 for r in results)
        batches = metric_value(c, "detente_batch_size_count")
        statements = metric_value(c, "detente_batch_size_sum")
        assert statements == 24 and batches < 24  # some requests were scored together


def test_batches_are_cut_into_passes_of_similar_length(loaded):
    texts = ["Short.", LONG, "A somewhat longer statement about the talks in Geneva today.",
             "", "bad \ud800", "Tiny.", "Another statement of middling length here."] * 5
    groups = loaded.length_groups(texts, max_size=4)
    assert sorted(i for g in groups for i in g) == list(range(len(texts)))
    assert all(1 <= len(g) <= 4 for g in groups)
    assert loaded.length_groups(texts, max_size=1) == [[i] for i in range(len(texts))]
    results = loaded.score(texts, batch_size=4)
    one_pass = loaded.score(texts, batch_size=1)
    for mine, alone in zip(results, one_pass, strict=True):
        assert mine["error"] == alone["error"] and mine["stance"] == alone["stance"]
        if mine["error"] is None:
            assert mine["stance_probs"] == pytest.approx(alone["stance_probs"], abs=1e-5)
