"""Scoring texts longer than the model's window: sentence windows, length-weighted mean.

The encoder reads at most ``max_seq_length`` tokens (special tokens included). Silently
truncating a longer text would label only its beginning, so a text that does not fit is
split instead:

1. into sentences, at ``.``, ``!``, ``?``, ``…`` (and their full-width forms) followed by
   white space, and at line breaks;
2. consecutive sentences are packed greedily into windows of at most ``max_seq_length``
   tokens, special tokens included; a single sentence longer than that is cut at word
   boundaries (mid-word only for one "word" longer than a window, such as a huge URL);
3. every window is scored like a statement of its own, and the row gets the mean of its
   windows' probabilities, weighted by each window's token count, for both heads. The
   labels are the argmax of those means and ``sentiment_score`` is P(positive) -
   P(negative) of them, so a long text is labelled by what most of it says.

A text that fits is one window of itself: nothing changes for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

SENTENCE_END = re.compile(r"(?<=[.!?…。！？])[\"'”’»)\]]*\s+|\n+")


@dataclass
class WindowPlan:
    """The texts to run and, for each, the input row it belongs to and its weight."""

    windows: list[str]
    owner: np.ndarray  # int64, index into the texts given to ``plan_windows``
    weight: np.ndarray  # float64, token count of each window


def token_budget(tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> int:
    """Content tokens per window: the model's length less [CLS]/[SEP] or their kin."""
    budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ValueError(f"max_seq_length {max_seq_length} leaves no room for text")
    return budget


def plan_windows(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_seq_length: int
) -> WindowPlan:
    """One window per text that fits, sentence windows for each text that does not.

    Only texts whose UTF-8 size exceeds the budget can exceed it in tokens (every tokenizer
    in use spends at least one byte per token), so short texts are not tokenized here.
    """
    budget = token_budget(tokenizer, max_seq_length)
    maybe_long = [i for i, t in enumerate(texts) if len(t.encode("utf-8")) + 1 > budget]
    lengths = {}
    if maybe_long:
        encoded = tokenizer(
            [texts[i] for i in maybe_long], add_special_tokens=False, truncation=False,
            verbose=False,
        )["input_ids"]
        lengths = {i: len(ids) for i, ids in zip(maybe_long, encoded)}
    windows: list[str] = []
    owner: list[int] = []
    weight: list[float] = []
    for i, text in enumerate(texts):
        n_tokens = lengths.get(i, 0)
        if n_tokens <= budget:
            parts = [(text, max(1, n_tokens))]
        else:
            parts = split_text(text, tokenizer, budget)
        for window, count in parts:
            windows.append(window)
            owner.append(i)
            weight.append(float(count))
    return WindowPlan(windows, np.asarray(owner, dtype=np.int64), np.asarray(weight))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (white space between them dropped)."""
    spans, start = [], 0
    for match in SENTENCE_END.finditer(text):
        end = match.start() + len(match.group(0).rstrip())
        if text[start:end].strip():
            spans.append((start, end))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def split_text(
    text: str, tokenizer: PreTrainedTokenizerBase, budget: int
) -> list[tuple[str, int]]:
    """(window text, token count) pairs covering ``text``, each at most ``budget`` tokens."""
    spans = sentence_spans(text)
    encoded = tokenizer(
        [text[a:b] for a, b in spans], add_special_tokens=False, truncation=False,
        return_offsets_mapping=True, verbose=False,
    )
    pieces: list[tuple[int, int, int]] = []  # (start char, end char, tokens)
    for (start, _end), offsets in zip(spans, encoded["offset_mapping"]):
        pieces.extend(_cut_sentence(text, start, offsets, budget))
    windows: list[tuple[str, int]] = []
    cur_start, cur_end, cur_tokens = None, 0, 0
    for start, end, tokens in pieces:
        if cur_start is not None and cur_tokens + tokens > budget:
            windows.append((text[cur_start:cur_end].strip(), cur_tokens))
            cur_start, cur_tokens = None, 0
        if cur_start is None:
            cur_start = start
        cur_end, cur_tokens = end, cur_tokens + tokens
    if cur_start is not None:
        windows.append((text[cur_start:cur_end].strip(), cur_tokens))
    return windows


def _cut_sentence(
    text: str, base: int, offsets: Sequence[tuple[int, int]], budget: int
) -> list[tuple[int, int, int]]:
    """A sentence as one piece, or cut at word starts into pieces of at most ``budget``."""
    n = len(offsets)
    if n == 0:
        return []
    if n <= budget:
        return [(base + offsets[0][0], base + offsets[-1][1], n)]
    pieces, first = [], 0
    while first < n:
        last = min(first + budget, n)  # exclusive
        if last < n:
            cut = _word_start_at_or_before(text, base, offsets, last, first)
            last = cut if cut > first else last
        pieces.append((base + offsets[first][0], base + offsets[last - 1][1], last - first))
        first = last
    return pieces


def _word_start_at_or_before(
    text: str, base: int, offsets: Sequence[tuple[int, int]], index: int, floor: int
) -> int:
    """The largest token index in (floor, index] that starts a word (white space before it)."""
    for i in range(index, floor, -1):
        start = base + offsets[i][0]
        if start == 0 or text[start - 1].isspace():
            return i
    return index


def aggregate(
    probs: np.ndarray, plan: WindowPlan, n_rows: int
) -> np.ndarray:
    """Per-row probabilities: the token-weighted mean of each row's windows."""
    out = np.zeros((n_rows, probs.shape[1]), dtype=np.float64)
    np.add.at(out, plan.owner, probs.astype(np.float64) * plan.weight[:, None])
    totals = np.bincount(plan.owner, weights=plan.weight, minlength=n_rows)
    return out / np.maximum(totals, 1e-12)[:, None]
