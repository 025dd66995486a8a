"""The demo's "About the model" tab: the model card and the training metrics, if present.

A researcher judging a prediction needs to know which model made it and how good that model
measured: the folder's ``README.md`` (the model card written by training) and its
``training_summary.json`` are shown as they are, with a short table of the key numbers.
"""

from __future__ import annotations

import serve.demo_offline  # noqa: F401 - first: gradio and the Hub read it on import

# isort: split
import json
import re
from pathlib import Path

import gradio as gr

from model.classifier import Classifier
from model.labels import HEADS
from training.model_card import real_table

FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def display_path(path: Path) -> str:
    """The path with the home folder as ``~``: shorter, and no user name in screenshots."""
    try:
        return "~/" + str(Path(path).resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def model_line(classifier: Classifier) -> str:
    """One line naming the model, its version and its labels."""
    name = f"`{display_path(classifier.path)}`" if classifier.path else "an unsaved model"
    base = classifier.config.base_model
    base = f" on `{Path(base).name}`" if base else ""
    return (f"Model {name}{base}, version `{classifier.model_version}`; stance labels "
            f"{', '.join(classifier.stance_labels)}.")


def read_model_card(folder: Path | None) -> str:
    """The model card without its YAML header, or a sentence saying there is none."""
    path = folder / "README.md" if folder else None
    if path is None or not path.is_file():
        return "This model folder has no model card (README.md)."
    return FRONT_MATTER.sub("", path.read_text(encoding="utf-8"), count=1)


def read_summary(folder: Path | None) -> dict | None:
    path = folder / "training_summary.json" if folder else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def metrics_markdown(summary: dict | None) -> str:
    """Accuracy and macro-F1 per split and head, and calibration error before/after."""
    if not summary:
        return "No training metrics (training_summary.json) in this model folder."
    lines = []
    if summary.get("by_source") and summary.get("selection_sources"):
        lines += ["Real statements (macro-F1, beside the baselines):", "", real_table(summary),
                  "", "Each whole split, all sources together:", ""]
    lines += ["| split | head | accuracy | macro-F1 |", "|---|---|---|---|"]
    for split in ("validation", "test"):
        for head, scores in (summary.get(split) or {}).items():
            if isinstance(scores, dict) and "accuracy" in scores:
                lines.append(f"| {split} | {head} | {scores['accuracy']:.3f} | "
                             f"{scores.get('macro_f1', float('nan')):.3f} |")
    if not any(line.startswith(("| validation", "| test")) for line in lines):
        lines = ["The summary has no accuracy figures."]
    calibration = summary.get("calibration") or {}
    needed = {"temperature", "ece_before", "ece_after"}
    rows = [f"| {head} | {c['temperature']:.2f} | {c['ece_before']:.3f} | {c['ece_after']:.3f} |"
            for head, c in calibration.items() if isinstance(c, dict) and needed <= set(c)]
    if rows:
        lines += ["", "Calibration (expected calibration error on validation):", "",
                  "| head | temperature | ECE before | ECE after |", "|---|---|---|---|", *rows]
    counts = summary.get("rows") or {}
    if counts:
        lines += ["", "Rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + "."]
    return "\n".join(lines)


def model_details(classifier: Classifier) -> str:
    """What identifies this model and how it reads a statement."""
    config = classifier.config
    calibrated = ", ".join(f"{head} {config.temperature_of(head):.2f}"
                           for head in HEADS)
    return "\n".join([
        f"- Folder: `{classifier.path}`" if classifier.path else "- Not saved to a folder",
        f"- Version (content hash of the weights): `{classifier.model_version}`",
        f"- Base encoder: `{config.base_model or 'unknown'}`",
        f"- Reads {config.max_seq_length} tokens at a time; a longer statement is read in "
        "sentence windows whose probabilities are averaged by length",
        f"- Stance labels: {', '.join(classifier.stance_labels)}; sentiment labels: "
        f"{', '.join(classifier.sentiment_labels)}",
        f"- Calibration temperatures: {calibrated} (1.00 means not calibrated)",
    ])


def about_tab(classifier: Classifier) -> None:
    folder = classifier.path
    summary = read_summary(folder)
    gr.Markdown("## This model\n\n" + model_details(classifier), elem_id="model-details")
    gr.Markdown("## Measured quality\n\n" + metrics_markdown(summary), elem_id="metrics")
    with gr.Accordion("Model card", open=True):
        gr.Markdown(read_model_card(folder), elem_id="model-card")
    if summary:
        with gr.Accordion("Full training summary (JSON)", open=False):
            gr.JSON(summary)
