"""Figures for evaluation reports: confusion matrices and reliability diagrams (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

# Figures are built with matplotlib.figure.Figure, not pyplot: saving needs no GUI backend, and
# importing this module leaves the process-wide backend alone (a notebook that imports the
# package keeps its inline plots).


def confusion_matrix_png(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], title: str, path: Path
) -> Path:
    fig = Figure(figsize=(5.2, 4.4), dpi=110)
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        gold, pred, labels=list(labels), ax=ax, cmap="Blues", colorbar=False,
        xticks_rotation=20,
    )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return path


def reliability_png(
    probs: np.ndarray, gold_index: np.ndarray, title: str, path: Path, n_bins: int = 10
) -> Path:
    """Accuracy per confidence bin against the diagonal of perfect calibration."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == gold_index
    edges = np.linspace(0, 1, n_bins + 1)
    centers, accuracy, counts = [], [], []
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            centers.append(confidence[in_bin].mean())
            accuracy.append(correct[in_bin].mean())
            counts.append(int(in_bin.sum()))
    fig = Figure(figsize=(4.6, 4.4), dpi=110)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar(edges[:-1], [0] * n_bins, width=1 / n_bins)  # keeps the axis layout stable
    ax.plot(centers, accuracy, "o-", color="tab:blue", label="model")
    for x, y, n in zip(centers, accuracy, counts):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 6), fontsize=7,
                    ha="center")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path
