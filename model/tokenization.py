"""Tokenisation for inference: length-sorted batches with dynamic padding.

Sorting by token length before batching means each batch is padded only to its own longest
row, so little of its compute goes to padding (benchmarks/results/notes_from_code.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase


def length_sorted_batches(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int,
    batch_size: int,
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """Yield ``(row_indices, padded_batch)`` with rows grouped by similar token length.

    The indices say where each batch row belongs in the input, so the caller can put the
    results back in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    encoded = tokenizer(
        list(texts), truncation=True, max_length=max_length, padding=False, verbose=False
    )
    lengths = [len(ids) for ids in encoded["input_ids"]]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    keys = list(encoded.keys())
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        features = [{key: encoded[key][i] for key in keys} for i in rows]
        yield rows, tokenizer.pad(features, padding=True, return_tensors="pt")
