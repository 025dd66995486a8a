"""What the demo's events do: predict, explain, correct, score a batch; plain, testable methods.

``DemoHandlers`` holds the shared ``ModelRunner`` (one forward pass at a time), the
corrections store and the batch limits; ``serve.demo`` lays out the page and wires each
event to one of these methods, so they are tested without a server or a browser. A mistake
in the user's input is raised as ``user_error``: shown in the page, never logged as a
server traceback. Scored files for download go to a private temp folder, a fresh
subfolder per batch, pruned after ``DOWNLOAD_MAX_AGE_S``.
"""

from __future__ import annotations

import serve.demo_offline  # noqa: F401 - first: gradio and the Hub read it on import

# isort: split
import atexit
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from model.classifier import Prediction
from model.labels import HEADS
from serve.corrections import CorrectionError, CorrectionStore
from serve.demo_batch import (
    BatchError,
    BatchLimits,
    display_table,
    run_batch,
    sentiment_histogram,
    stance_chart,
    summary_markdown,
    write_scored,
)
from serve.demo_runner import ModelRunner
from serve.explain import summary_markdown as explanation_markdown

LOW_CONFIDENCE = 0.5  # top stance probability below this: say the label is uncertain
CLOSE_CALL = 0.15  # or the top two within this margin
DOWNLOAD_MAX_AGE_S = 2 * 3600


@dataclass
class DemoHandlers:
    """What the demo's events call; plain methods, so they are testable without a server."""

    runner: ModelRunner
    store: CorrectionStore
    limits: BatchLimits = field(default_factory=BatchLimits)
    downloads: Path = field(default_factory=lambda: new_download_folder())

    def check_text(self, text: str | None) -> str:
        text = (text or "").strip()
        if not text:
            raise user_error("Type or paste a statement first.")
        if len(text) > self.limits.max_chars:
            raise user_error(
                f"The statement has {len(text):,} characters; the demo takes at most "
                f"{self.limits.max_chars:,}. Shorten it, or score long texts with "
                "detente score."
            )
        return text

    def predict(self, text: str) -> tuple[dict, dict, float, str, dict]:
        """Stance probabilities, sentiment probabilities and score, a note, the raw result."""
        text = self.check_text(text)
        pred = self.runner.predict(text)
        note = confidence_note(pred, self.runner.token_count(text), self.runner)
        raw = {"text": text, **pred.to_dict(),
               "model_version": self.runner.classifier.model_version}
        return (pred.stance_probs, pred.sentiment_probs, round(pred.sentiment_score, 3), note,
                raw)

    def explain(self, text: str) -> tuple[list[tuple[str, float | None]], str]:
        """Word-occlusion highlights for the predicted stance, and their reading in words."""
        text = self.check_text(text)
        explanation = self.runner.explain(text)
        return explanation.segments(), explanation_markdown(explanation)

    def correct(self, text: str, stance: str | None, sentiment: str | None) -> tuple[str, str]:
        """Store the user's labels for ``text`` with the model's own prediction beside them."""
        text = self.check_text(text)
        pred = self.runner.predict(text)
        try:
            saved = self.store.add(
                text, stance, sentiment, model_version=self.runner.classifier.model_version,
                model_stance=pred.stance, model_sentiment=pred.sentiment,
            )
        except CorrectionError as err:
            raise user_error(f"Correction not saved: {err}.") from err
        except OSError as err:
            raise user_error(f"Correction not saved: cannot write {self.store.path} "
                             f"({err.strerror or err}).") from err
        verb = "Replaced the earlier correction of this statement" if saved.replaced else "Saved"
        given = [f"{head} **{saved.record[head]}** (model: {model})"
                 for head, model in zip(HEADS, (pred.stance, pred.sentiment), strict=True)
                 if saved.record[head]]
        return f"{verb}: {', '.join(given)}. Thank you.", self.corrections_info(saved.count)

    def corrections_info(self, count: int | None = None) -> str:
        try:
            count = self.store.count() if count is None else count
        except CorrectionError as err:
            return f"The corrections file cannot be read: {err}"
        model = self.runner.classifier.path or "MODEL"
        return (f"**{count:,}** correction{'s' if count != 1 else ''} waiting in "
                f"`{self.store.path}` for `detente retrain --from {model} "
                f"--data {self.store.path}`.")

    def batch(
        self,
        pasted: str | None,
        upload: str | None,
        text_column: str,
        id_column: str,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio injects it by default
    ) -> tuple:
        """Score pasted lines or an uploaded file; table, two charts and the scored file."""
        def report(fraction: float, message: str) -> None:
            progress(fraction, desc=message)

        try:
            result = run_batch(self.runner, self.limits, pasted=pasted, upload=upload,
                               text_column=text_column, id_column=id_column, progress=report)
        except BatchError as err:
            raise user_error(f"Cannot score this input: {err}") from err
        labels = self.runner.stance_labels
        path = write_scored(result.output, result.fmt, self.download_folder(),
                            stem=f"detente-scored-{time.strftime('%Y%m%d-%H%M%S')}")
        view = display_table(result.table, labels, result.text_column, result.id_column)
        return (summary_markdown(result, labels), view,
                stance_chart(result.table, labels), sentiment_histogram(result.table), str(path))

    def download_folder(self) -> Path:
        """A fresh folder with a generated name per batch; old ones are pruned."""
        prune(self.downloads, DOWNLOAD_MAX_AGE_S)
        folder = self.downloads / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder


def user_error(message: str) -> gr.Error:
    """An error in the user's input: shown in the page, not logged as a server traceback."""
    return gr.Error(message, print_exception=False)


def new_download_folder() -> Path:
    """A temp folder readable by this user only, removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix="detente-demo-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def prune(folder: Path, max_age_s: float) -> None:
    """Remove download subfolders older than ``max_age_s``: a long-running demo stays small."""
    cutoff = time.time() - max_age_s
    for child in folder.iterdir() if folder.exists() else []:
        if child.is_dir() and child.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)


def confidence_note(pred: Prediction, tokens: int, runner: ModelRunner) -> str:
    """Say in words how sure the model is, and what it did not read."""
    ranked = sorted(pred.stance_probs.items(), key=lambda kv: kv[1], reverse=True)
    (top, p1), (second, p2) = ranked[0], ranked[1]
    if p1 < LOW_CONFIDENCE or p1 - p2 < CLOSE_CALL:
        lines = [f"**Uncertain**: the model is torn between {top} ({p1:.2f}) and {second} "
                 f"({p2:.2f}); do not rely on this label."]
    elif p1 >= 0.8:
        lines = [f"**Confident**: {top} with probability {p1:.2f}."]
    else:
        lines = [f"**Fairly confident**: {top} ({p1:.2f}), next {second} ({p2:.2f})."]
    temperature = runner.classifier.config.stance_temperature
    if temperature != 1.0:
        lines.append(f"Probabilities are calibrated on the validation split "
                     f"(temperature {temperature:.2f}).")
    else:
        lines.append("Probabilities are not calibrated (this model has no fitted temperature).")
    if tokens > runner.max_tokens:
        lines.append(f"The statement has {tokens} tokens, more than the model's window of "
                     f"{runner.max_tokens}: it was read in sentence windows and their "
                     "probabilities averaged by length, as `detente score` does. The "
                     "explanation covers the first window.")
    return "  \n".join(lines)
