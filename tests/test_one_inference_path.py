"""One inference path: a long statement gets the same probabilities from every front end.

``detente predict``, ``detente score``, the demo's statement tab, the HTTP API and the
Python API all go through ``Classifier.score``, which reads a text longer than the model's
window in sentence windows. A 12-sentence statement is far longer than the tiny model's
64-token window, so any front end that truncated or windowed differently would differ here.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from model.classifier import Classifier
from model.probabilities import calibrated
from serve.cli import app

SENTENCES = [
    "The foreign minister said her government was ready to return to talks in Geneva.",
    "Artillery struck the port district overnight, local officials said.",
    "The rebels accused the army of shelling villages near the border.",
    "A ceasefire would give both sides time to bring aid to the wounded.",
    "Exports of grain rose for the third month in a row, the ministry said.",
    "The envoy called on both parties to sit down without preconditions.",
    "We condemn the cowardly attack on our observers, the spokesman said.",
    "The delegation will arrive on Tuesday for two days of meetings.",
    "Negotiators say a framework agreement is within reach.",
    "The opposition blamed the government for the collapse of the last truce.",
    "Aid convoys crossed the river for the first time since March.",
    "Only dialogue can end this war, the president told the assembly.",
]
STATEMENT = " ".join(SENTENCES)
cli = CliRunner()


def wait_until_ready(client, timeout: float = 60) -> None:
    """The service loads its model in the background; /ready says when it is done."""
    deadline = time.monotonic() + timeout
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def classifier(tiny_model_dir) -> Classifier:
    return Classifier.load(tiny_model_dir)


@pytest.fixture(scope="module")
def python_api(classifier) -> np.ndarray:
    """What ``Classifier.predict`` gives: the reference for every other front end."""
    probs = classifier.predict([STATEMENT])[0].stance_probs
    return np.array([probs[label] for label in classifier.stance_labels])


def test_the_statement_is_read_in_several_windows(classifier, python_api):
    assert len(classifier.tokenizer(STATEMENT)["input_ids"]) > 2 * 64
    assert classifier.score([STATEMENT]).windows[0] > 2
    first_window, _ = calibrated(*classifier.predict_logits([STATEMENT]), classifier.config)
    assert np.abs(first_window[0] - python_api).max() > 1e-4  # truncation would differ


def test_detente_predict_gives_the_python_api_probabilities(tiny_model_dir, classifier,
                                                            python_api):
    result = cli.invoke(app, ["predict", "--model", str(tiny_model_dir), "--json", STATEMENT])
    assert result.exit_code == 0, result.output
    probs = json.loads(result.stdout)["stance_probs"]
    got = np.array([probs[label] for label in classifier.stance_labels])
    np.testing.assert_allclose(got, python_api, atol=1e-6)


@pytest.mark.parametrize("backend, tolerance", [("torch", 1e-6), ("onnx", 1e-4)])
def test_detente_score_gives_the_python_api_probabilities(tmp_path, tiny_model_dir, classifier,
                                                          python_api, backend, tolerance):
    source = tmp_path / "statements.csv"
    pd.DataFrame({"text": [STATEMENT]}).to_csv(source, index=False)
    output = tmp_path / "scored.csv"
    result = cli.invoke(app, ["score", str(source), "--output", str(output), "--model",
                              str(tiny_model_dir), "--backend", backend, "--no-progress"])
    assert result.exit_code == 0, result.output
    row = pd.read_csv(output).iloc[0]
    got = np.array([row[f"p_{label}"] for label in classifier.stance_labels])
    np.testing.assert_allclose(got, python_api, atol=tolerance)


def test_the_demo_gives_the_python_api_probabilities(tmp_path, classifier, python_api):
    from serve.corrections import CorrectionStore
    from serve.demo import DemoHandlers
    from serve.demo_runner import ModelRunner

    store = CorrectionStore(tmp_path / "corrections.jsonl",
                            stance_labels=classifier.stance_labels,
                            sentiment_labels=classifier.sentiment_labels)
    *_, raw = DemoHandlers(ModelRunner(classifier), store).predict(STATEMENT)
    got = np.array([raw["stance_probs"][label] for label in classifier.stance_labels])
    np.testing.assert_allclose(got, python_api, atol=1e-6)


def test_the_http_api_gives_the_python_api_probabilities(tiny_model_dir, classifier,
                                                         python_api):
    from fastapi.testclient import TestClient

    from serve.api.app import create_app
    from serve.api.settings import ServeArguments

    with TestClient(create_app(ServeArguments(model=str(tiny_model_dir), demo=False))) as c:
        wait_until_ready(c)
        response = c.post("/v1/classify", json={"texts": [STATEMENT]})
    assert response.status_code == 200, response.text
    probs = response.json()["results"][0]["stance_probs"]
    got = np.array([probs[label] for label in classifier.stance_labels])
    np.testing.assert_allclose(got, python_api, atol=1e-4)  # auto: ONNX fp32 on this model
