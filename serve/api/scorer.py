"""The served model: loaded as ``detente score`` loads it, scored as ``detente score`` scores.

Nothing here is new scoring logic; it is the glue between the HTTP layer and what exists:

- loading: ``serve.loading.load_classifier(model, backend="auto")``, the backend the
  model folder chose on its validation split (``model=None`` is the default model, trained
  first if there is none, with the trainer's message and progress bar);
- scoring: ``serve.scored_rows.score_texts`` (an empty or unusable text keeps its place with
  an ``error``; a text longer than the model's window is read in sentence windows and the
  windows' probabilities averaged by length) and ``scored_columns``, the columns
  ``detente score`` writes, so a statement gets the same labels and the same float32
  probabilities from the API as in a scored file;
- explanations: ``serve.explain.explain`` (word occlusion, what the demo shows), with the
  same classifier, for the label the API returned;
- the model card and metrics: ``serve.demo_about``'s readers of the model folder.

The demo mounted beside the API runs on the same ``Classifier``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from model.classifier import Classifier
from model.labels import HEADS
from serve.explain import explain as occlusion
from serve.explain import summary_markdown
from serve.loading import load_classifier
from serve.scored_rows import DEFAULT_BATCH_SIZE, score_texts, scored_columns, text_error

SECOND_HEADING = re.compile(r"\n## ")
PADDING_SLACK = 1.1  # a forward pass holds at most ~10 % padding tokens (see length_groups)


@dataclass
class LoadedModel:
    """A model folder loaded with its ``auto`` backend: what the API and its demo run."""

    folder: Path
    classifier: Classifier

    @classmethod
    def load(cls, model: str | Path | None) -> LoadedModel:
        """Load like ``detente score --backend auto`` (training the default model if needed)."""
        classifier = load_classifier(model, backend="auto")
        return cls(classifier.path.resolve(), classifier)

    @property
    def backend_name(self) -> str:
        return self.classifier.backend_name

    @property
    def version(self) -> str:
        return self.classifier.model_version

    @property
    def labels(self) -> dict[str, list[str]]:
        config = self.classifier.config
        return {"stance": list(config.stance_labels),
                "sentiment": list(config.sentiment_labels)}

    def score(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> list[dict[str, Any]]:
        """One result per text, in order (``schemas.StatementResult`` without explanation).

        The texts are scored in forward passes of similar token lengths (``length_groups``),
        each through ``score_texts`` as ``detente score`` scores a chunk.
        """
        results: list[dict[str, Any]] = [{} for _ in texts]
        for group in self.length_groups(texts, batch_size):
            part = [texts[i] for i in group]
            for i, result in zip(group, self._score_pass(part), strict=True):
                results[i] = result
        return results

    def length_groups(self, texts: list[str], max_size: int) -> list[list[int]]:
        """Indices of ``texts`` in groups of similar token length, at most ``max_size`` each.

        Why: requests arrive with statements of every length, and one forward pass pads all
        of its rows to the longest; passes with little padding beat both fixed-size passes
        and one statement at a time (measured: benchmarks/results/notes_from_code.md).
        Sorted by length, a group grows while its padded size (longest x rows) stays within
        the slack (``PADDING_SLACK``) of its real tokens.
        """
        if max_size <= 1 or len(texts) <= 1:
            return [[i] for i in range(len(texts))]
        config = self.classifier.config
        readable = [i for i, text in enumerate(texts) if text_error(text) is None]
        lengths = [0] * len(texts)  # texts that get an error cost nothing
        if readable:
            encoded = self.classifier.tokenizer(
                [texts[i] for i in readable], truncation=True,
                max_length=int(config.max_seq_length), verbose=False)["input_ids"]
            for i, ids in zip(readable, encoded):
                lengths[i] = len(ids)
        groups: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i in sorted(range(len(texts)), key=lengths.__getitem__):
            padded = max(lengths[i], 1) * (len(current) + 1)
            if current and (len(current) >= max_size
                            or padded > PADDING_SLACK * (tokens + lengths[i])):
                groups.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += lengths[i]
        if current:
            groups.append(current)
        return groups

    def _score_pass(self, texts: list[str]) -> list[dict[str, Any]]:
        config = self.classifier.config
        scores = score_texts(texts, self.classifier, batch_size=max(1, len(texts)))
        rows = pa.table(scored_columns(scores, config, self.version)).to_pylist()
        sentiment = scores.sentiment.astype(np.float32)  # as precise as the stance columns
        results = []
        for i, row in enumerate(rows):
            if row["error"] is not None:
                results.append({"stance": None, "stance_probs": None, "sentiment": None,
                                "sentiment_probs": None, "sentiment_score": None,
                                "error": row["error"]})
                continue
            results.append({
                "stance": row["stance"],
                "stance_probs": {label: row[f"p_{label}"] for label in config.stance_labels},
                "sentiment": row["sentiment"],
                "sentiment_probs": {label: float(sentiment[i, j])
                                    for j, label in enumerate(config.sentiment_labels)},
                "sentiment_score": row["sentiment_score"],
                "error": None,
            })
        return results

    def explain(self, text: str, label: str | None = None) -> dict[str, Any]:
        """Word occlusion of ``label`` (default: the predicted stance), in one forward pass."""
        config = self.classifier.config
        result = occlusion(
            text,
            lambda variants: self.classifier.predict_proba(variants, max(1, len(variants)))[0],
            list(config.stance_labels),
            label=label,
        )
        return {
            "label": result.label,
            "probability": result.probability,
            "words": [{"text": u.text, "start": u.start, "end": u.end, "score": u.score,
                       "probability_without": u.probability_without} for u in result.units],
            "words_per_unit": result.words_per_unit,
            "summary": summary_markdown(result),
        }

    def info(self) -> dict[str, Any]:
        """The model card summary, labels, version, backend and measured quality."""
        from serve.demo_about import read_model_card, read_summary

        config = self.classifier.config
        return {
            "model_version": self.version,
            "model": self.folder.name,
            "backend": self.classifier.backend_name,
            "base_model": config.base_model,
            "labels": self.labels,
            "max_seq_length": int(config.max_seq_length),
            "calibration": {head: float(config.temperature_of(head))
                            for head in HEADS},
            "metrics": evaluation_metrics(read_summary(self.folder)),
            "card": card_summary(read_model_card(self.folder)),
        }


def evaluation_metrics(summary: dict | None) -> dict[str, dict[str, dict[str, float]]]:
    """Accuracy and macro-F1 of every evaluated split in a training summary.

    Any top-level entry shaped ``{head: {"accuracy": ..., "macro_f1": ...}}`` counts, so
    splits added later (a real-text test set) appear without a change here.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split, heads in (summary or {}).items():
        if not isinstance(heads, dict):
            continue
        kept = {head: {k: float(v) for k, v in scores.items()
                       if k in ("accuracy", "macro_f1") and isinstance(v, int | float)}
                for head, scores in heads.items()
                if isinstance(scores, dict) and "macro_f1" in scores}
        if kept:
            out[split] = kept
    return out


def card_summary(card: str) -> str:
    """The model card up to its second section: the title and what the model is."""
    match = SECOND_HEADING.search(card)
    return (card[: match.start()] if match else card).strip()
