"""The JSON the service reads and writes, as pydantic models (they make the OpenAPI at /docs).

Requests are strict: ``texts`` holds strings only (a number or null is a 422 naming its
place, ``texts[2]``), unknown keys are refused (a typo such as ``"explian"`` would
otherwise be ignored in silence), and ``explain`` is a JSON boolean. An empty or blank
string is not a type error: it keeps its place in the results with ``error`` set, exactly
as an empty cell does in ``detente score``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, WithJsonSchema

EXAMPLE_TEXTS = [
    "We are ready to talk, but the other side keeps stalling.",
    "The rebels looted the clinic and kidnapped two nurses.",
    "",
]


def _one_or_many(value: Any) -> Any:
    """A single string is a list of one."""
    return [value] if isinstance(value, str) else value


Texts = Annotated[
    list[Annotated[str, Field(strict=True)]],
    BeforeValidator(_one_or_many),
    WithJsonSchema({
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "The statements to classify: a list of strings, or one string.",
    }),
]


class ClassifyRequest(BaseModel):
    """``POST /v1/classify``: statements to label, in the order the results come back."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"texts": EXAMPLE_TEXTS, "explain": False},
            {"texts": "Both sides agreed to extend the truce.", "explain": True},
        ]},
    )

    texts: Texts
    explain: StrictBool = Field(
        default=False,
        description="Add each statement's word attributions (word occlusion), as the demo "
        "shows them. Costs one forward pass per word; use it for a few statements.")


class Word(BaseModel):
    """One occluded word (or group of neighbouring words in a long statement)."""

    text: str
    start: int = Field(description="Character offset of the word in the statement.")
    end: int
    score: float = Field(description="How much the log-odds of the explained label fall "
                         "when the word is deleted: positive pushed towards the label.")
    probability_without: float = Field(description="P(label) for the statement without it.")


class Explanation(BaseModel):
    """Word occlusion of the predicted stance, as in the demo (``serve.explain``)."""

    label: str
    probability: float
    words: list[Word]
    words_per_unit: int = Field(description="Words occluded together (long statements).")
    summary: str = Field(description="The demo's reading of the explanation (Markdown).")


class StatementResult(BaseModel):
    """One statement's labels, or why it could not be scored (``error``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "stance": "pro_negotiation",
        "stance_probs": {"pro_negotiation": 0.81, "accusatory": 0.15, "neutral": 0.04},
        "sentiment": "negative",
        "sentiment_probs": {"negative": 0.62, "neutral": 0.3, "positive": 0.08},
        "sentiment_score": -0.54,
        "error": None,
    }]})

    stance: str | None
    stance_probs: dict[str, float] | None
    sentiment: str | None
    sentiment_probs: dict[str, float] | None
    sentiment_score: float | None = Field(description="P(positive) - P(negative), in [-1, 1].")
    error: str | None = Field(description="Null, or why this text could not be scored (it "
                              "keeps its place; its labels are null).")
    explanation: Explanation | None = Field(
        default=None, description="Only with explain: true (null for a text with an error).")


class ClassifyResponse(BaseModel):
    """One result per text, in the order of the request."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model_version": "5836cf7ca7a3",
        "results": [
            StatementResult.model_config["json_schema_extra"]["examples"][0],
            {"stance": None, "stance_probs": None, "sentiment": None, "sentiment_probs": None,
             "sentiment_score": None, "error": "'text' is empty"},
        ],
    }]})

    model_version: str = Field(description="Content hash of the model's weights.")
    results: list[StatementResult]


class ModelInfo(BaseModel):
    """``GET /v1/model``: which model answers, how it measured, and the service's limits."""

    model_version: str
    model: str = Field(description="The model folder's name.")
    backend: str = Field(description="What scores: the `auto` backend the model folder chose "
                         "(torch, onnx or onnx-int8).")
    engine: str
    base_model: str | None
    labels: dict[str, list[str]]
    max_seq_length: int = Field(description="Tokens read at a time; longer texts are read "
                                "in sentence windows, averaged by length.")
    calibration: dict[str, float] = Field(description="Temperature per head (1: none).")
    metrics: dict[str, dict[str, dict[str, float]]] = Field(
        description="Accuracy and macro-F1 per evaluated split and head, from the model's "
        "training summary (test: the held-out test split).")
    card: str = Field(description="The model card's opening section (Markdown).")
    limits: dict[str, int | float]


class ErrorResponse(BaseModel):
    """Every error: a sentence, its kind, the field it is about, and the request id."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "error": "texts[1] should be a string, not int",
        "type": "invalid_request",
        "field": "texts[1]",
        "request_id": "3f2b9c0e-0000042",
    }]})

    error: str
    type: str
    field: str | None = None
    request_id: str
    errors: list[dict[str, str]] | None = Field(
        default=None, description="Every problem found, when there are several.")


class Status(BaseModel):
    """``/health`` and ``/ready``."""

    status: str
    model_version: str | None = None
    error: str | None = None
