from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from model import Classifier

TEXTS = [
    "A short one.",
    "A much longer statement about the ceasefire agreed in Doha and the prisoners to be "
    "released on both sides next week.",
    "Talks resume Monday.",
    "The ministry accused the rebels of shelling the airport for the third night in a row.",
]


def test_predictions_are_in_input_order_whatever_the_batching(tiny_model_dir):
    clf = Classifier.load(tiny_model_dir)
    one_by_one = [clf.predict([t])[0] for t in TEXTS]
    batched = clf.predict(TEXTS, batch_size=3)
    for a, b in zip(one_by_one, batched):
        assert a.stance == b.stance
        for label in clf.stance_labels:
            assert a.stance_probs[label] == pytest.approx(b.stance_probs[label], abs=1e-5)


def test_prediction_fields_are_consistent(tiny_model_dir):
    clf = Classifier.load(tiny_model_dir)
    for pred in clf.predict(TEXTS):
        assert set(pred.stance_probs) == {"pro_negotiation", "accusatory", "neutral"}
        assert sum(pred.stance_probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert pred.stance == max(pred.stance_probs, key=pred.stance_probs.get)
        expected = pred.sentiment_probs["positive"] - pred.sentiment_probs["negative"]
        assert pred.sentiment_score == pytest.approx(expected)
        assert -1.0 <= pred.sentiment_score <= 1.0


def test_temperature_changes_probabilities_not_labels(tiny_model_dir):
    clf = Classifier.load(tiny_model_dir)
    before = clf.predict(TEXTS)
    clf.config.stance_temperature = 5.0
    after = clf.predict(TEXTS)
    assert [p.stance for p in before] == [p.stance for p in after]
    spread = [max(p.stance_probs.values()) for p in after]
    assert all(s <= max(b.stance_probs.values()) + 1e-6 for s, b in zip(spread, before))


def test_accepts_pandas_and_pyarrow_columns(tiny_model_dir):
    clf = Classifier.load(tiny_model_dir)
    expected = clf.predict_proba(TEXTS)[0]
    np.testing.assert_allclose(clf.predict_proba(pd.Series(TEXTS))[0], expected, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(pa.array(TEXTS))[0], expected, atol=1e-6)
    with pytest.raises(TypeError, match="position 1"):
        clf.predict(["fine", None])


def test_loading_the_default_model_never_trains_it(tmp_path, monkeypatch):
    """``Classifier.load()`` only loads; ``serve.load_classifier()`` trains on first use."""
    from model.errors import DefaultModelMissing

    monkeypatch.setenv("DETENTE_HOME", str(tmp_path))
    with pytest.raises(DefaultModelMissing, match="load_classifier"):
        Classifier.load()
    assert not (tmp_path / "models").exists()


def test_an_unknown_backend_is_refused_with_the_choices(tiny_model_dir):
    with pytest.raises(ValueError, match="onnx-int8"):
        Classifier.load(tiny_model_dir, backend="tensorrt")
