"""Which words pushed the stance prediction: word occlusion (leave-one-word-out).

For each word we delete it from the statement and ask the model again; the word's score is
how much the log-odds of the predicted stance fall without it:

    score(word) = logit P(label | statement) - logit P(label | statement without word)

A positive score means the word pushed the model towards the label, a negative one that it
pushed away from it. Log-odds rather than probability points, because probabilities
saturate: at P = 0.99 deleting the decisive word may move P by only two points, while its
log-odds effect is as large as in an uncertain statement. The probability without each word
is kept too, so the summary can say what deleting it does in plain terms.

Occlusion is model-agnostic and faithful by construction (it measures the model's own
behaviour, nothing is approximated by gradients), and its cost is one forward pass over
``n_words + 1`` short texts, which we send as a single padded batch.

When a statement has more words than ``max_units``, neighbouring words are occluded
together in equal spans, so a long input costs at most ``max_units + 1`` texts. A statement
longer than the model's window is read in sentence windows (``model.long_text``), so every
word, wherever it is, gets a score.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

# A word: letters/digits, with inner apostrophes or hyphens ("don't", "cease-fire").
WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
DEFAULT_MAX_UNITS = 48
# Colour intensity is score / max(largest |score|, DISPLAY_FLOOR): a statement in which no
# word moves the log-odds by more than 0.5 stays faint instead of being blown up.
DISPLAY_FLOOR = 0.5
EPS = 1e-6

ProbaFn = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Unit:
    """One occluded span: a word, or several neighbouring words for long statements."""

    start: int
    end: int
    text: str
    score: float  # fall in the label's log-odds when the span is deleted
    probability_without: float  # P(label) for the statement without the span


@dataclass(frozen=True)
class Explanation:
    """The occlusion result for one statement and one label."""

    text: str
    label: str
    probability: float
    units: list[Unit]
    words_per_unit: int
    n_texts: int = 0  # texts in the forward pass (original + variants)
    spans: list[tuple[int, int]] = field(default_factory=list, repr=False)

    def segments(self) -> list[tuple[str, float | None]]:
        """``(piece, colour)`` pairs that cover ``text`` exactly, for gr.HighlightedText.

        Colours are scores scaled into [-1, 1]; text between words (spaces, punctuation)
        and words the model never read carry ``None``.
        """
        scale = max([abs(u.score) for u in self.units] + [DISPLAY_FLOOR])
        out: list[tuple[str, float | None]] = []
        pos = 0
        for unit in self.units:
            if unit.start > pos:
                out.append((self.text[pos : unit.start], None))
            out.append((self.text[unit.start : unit.end], round(unit.score / scale, 4)))
            pos = unit.end
        if pos < len(self.text):
            out.append((self.text[pos:], None))
        return out

    def top(self, n: int = 5, *, towards: bool = True) -> list[Unit]:
        """The ``n`` units that pushed most towards (or against) the label."""
        sign = 1.0 if towards else -1.0
        ranked = sorted(self.units, key=lambda u: sign * u.score, reverse=True)
        return [u for u in ranked[:n] if sign * u.score > 0]


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words in ``text``."""
    return [m.span() for m in WORD.finditer(text)]


def group_spans(
    spans: Sequence[tuple[int, int]], max_units: int
) -> tuple[list[tuple[int, int]], int]:
    """Merge neighbouring words so that there are at most ``max_units`` spans."""
    if max_units < 1:
        raise ValueError(f"max_units must be at least 1, got {max_units}")
    size = max(1, math.ceil(len(spans) / max_units))
    groups = [
        (spans[i][0], spans[min(i + size, len(spans)) - 1][1])
        for i in range(0, len(spans), size)
    ]
    return groups, size


def occlude(text: str, span: tuple[int, int]) -> str:
    """``text`` without the characters of ``span`` (and one space, so no gap is left)."""
    start, end = span
    if start > 0 and text[start - 1] == " " and (end == len(text) or text[end] == " "):
        start -= 1
    return text[:start] + text[end:]


def explain(
    text: str,
    proba: ProbaFn,
    labels: Sequence[str],
    *,
    label: str | None = None,
    max_units: int = DEFAULT_MAX_UNITS,
) -> Explanation:
    """Score each word of ``text`` by occlusion, in one call of ``proba``.

    ``proba`` maps a list of texts to stance probabilities ``(n, len(labels))`` and is called
    exactly once, with the statement first and then one variant per unit. ``label`` is the
    label to explain (default: the predicted one).
    """
    spans = word_spans(text)
    units, size = group_spans(spans, max_units) if spans else ([], 1)
    texts = [text] + [occlude(text, span) for span in units]
    probs = np.asarray(proba(texts))
    if probs.shape != (len(texts), len(labels)):
        expected = (len(texts), len(labels))
        raise ValueError(f"proba returned shape {probs.shape}, expected {expected}")
    index = int(probs[0].argmax()) if label is None else list(labels).index(label)
    base = float(probs[0, index])
    scored = [
        Unit(start, end, text[start:end], log_odds(base) - log_odds(float(row[index])),
             float(row[index]))
        for (start, end), row in zip(units, probs[1:], strict=True)
    ]
    return Explanation(
        text=text, label=labels[index], probability=base, units=scored,
        words_per_unit=size, n_texts=len(texts), spans=spans,
    )


def log_odds(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def format_p(p: float) -> str:
    """Two decimals, or three near 0 and 1, where two would hide every difference."""
    return f"{p:.3f}" if p < 0.05 or p > 0.95 else f"{p:.2f}"


def summary_markdown(explanation: Explanation, n: int = 5) -> str:
    """A short, exact reading of the explanation: the strongest words and their effect."""
    ex = explanation
    if not ex.units:
        return "No words to explain."
    lines = [
        f"Word occlusion for **{ex.label}** (P = {format_p(ex.probability)}): each word is deleted "
        f"in turn and the statement scored again. Red words pushed towards {ex.label}, purple "
        f"ones away from it, by how much the log-odds of {ex.label} fall without them; in "
        f"brackets, P({ex.label}) without the word."
    ]
    for towards, title in ((True, "Towards"), (False, "Against")):
        units = ex.top(n, towards=towards)
        if units:
            words = ", ".join(f"*{u.text}* ({format_p(u.probability_without)})"
                              for u in units)
            lines.append(f"- {title} {ex.label}: {words}")
    largest = max(abs(ex.probability - u.probability_without) for u in ex.units)
    if largest < 0.01:
        lines.append(f"- No single word moves P({ex.label}) by even 0.01: the prediction "
                     "rests on the statement as a whole, not on any one word.")
    if ex.words_per_unit > 1:
        lines.append(f"- Long statement: words were occluded in groups of {ex.words_per_unit}.")
    return "\n".join(lines)
