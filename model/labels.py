"""The label sets of the two heads, as defined in docs/labels.md (../shared/LABELS.md)."""

from __future__ import annotations

STANCE_LABELS: tuple[str, ...] = ("pro_negotiation", "accusatory", "neutral")
SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

# Heads are addressed by these names everywhere: config fields, data columns, metrics.
HEADS: tuple[str, ...] = ("stance", "sentiment")
