"""The Gradio demo: one statement with an explanation, batch scoring, corrections, the model card.

``build_demo(classifier)`` returns the ``gr.Blocks`` app; ``launch(classifier)`` serves it the
way ``detente demo`` does. Everything runs on this machine: analytics and Hub telemetry are
switched off before gradio is imported, there is no share link, and the default theme serves
its own fonts. Each action is a named API endpoint (``/predict``, ``/explain``, ``/batch``,
``/correct``) for ``gradio_client``.
"""

from __future__ import annotations

import os

# Set before gradio (and gradio_client, huggingface_hub) are imported: they read these early.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from model.classifier import Classifier, Prediction  # noqa: E402
from model.labels import HEADS  # noqa: E402
from serve.arguments import DEFAULT_HOST, DEFAULT_PORT  # noqa: E402
from serve.corrections import CorrectionError, CorrectionStore  # noqa: E402
from serve.demo_about import about_tab, model_line  # noqa: E402
from serve.demo_batch import (  # noqa: E402
    BatchError,
    BatchLimits,
    display_table,
    run_batch,
    sentiment_histogram,
    stance_chart,
    summary_markdown,
    write_scored,
)
from serve.demo_content import EXAMPLES, INTRO, LABEL_GUIDE  # noqa: E402
from serve.demo_runner import ModelRunner  # noqa: E402
from serve.explain import summary_markdown as explanation_markdown  # noqa: E402

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
    folder = Path(tempfile.mkdtemp(prefix="detente-demo-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def private_upload_folder() -> None:
    """Keep uploads (and the scored files gradio copies for download) private to this user.

    gradio's default cache, ``/tmp/gradio``, is shared by every user of the machine and
    readable by all of them; a folder from ``mkdtemp`` is readable by its owner only and is
    removed at exit. Uploads land in it under a generated (content hash) subfolder with a
    sanitised base name, never where a crafted file name points. ``GRADIO_TEMP_DIR`` set by
    the user wins.
    """
    if not os.environ.get("GRADIO_TEMP_DIR"):
        os.environ["GRADIO_TEMP_DIR"] = str(new_download_folder())


def prune(folder: Path, max_age_s: float) -> None:
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


def build_demo(
    classifier: Classifier,
    *,
    corrections_path: str | Path | None = None,
    limits: BatchLimits | None = None,
) -> gr.Blocks:
    """The demo app around one loaded classifier (loaded once, shared by every request)."""
    runner = ModelRunner(classifier)
    store = CorrectionStore(corrections_path, stance_labels=runner.stance_labels,
                            sentiment_labels=runner.sentiment_labels)
    handlers = DemoHandlers(runner, store, limits or BatchLimits())
    with gr.Blocks(title="detente", analytics_enabled=False,
                   delete_cache=(3600, DOWNLOAD_MAX_AGE_S)) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(model_line(classifier), elem_id="model-line")
        with gr.Tab("Statement", id="statement"):
            corrections_md = statement_tab(handlers)
        with gr.Tab("Batch", id="batch"):
            batch_tab(handlers)
        with gr.Tab("About the model", id="about"):
            about_tab(classifier)
        demo.load(handlers.corrections_info, None, corrections_md, api_visibility="private",
                  queue=False)
    demo.handlers = handlers  # for tests and embedding code
    return demo


@dataclass
class StatementTab:
    """The components of the single-statement tab that its events read and write."""

    statement: gr.Textbox
    classify: gr.Button
    guideline: gr.Textbox
    outputs: list  # stance, sentiment, score, note, raw JSON: what /predict returns
    explanation: list  # highlights, reading: what /explain returns
    examples: gr.Examples
    fixes: list  # stance and sentiment radios of the correction box
    save: gr.Button
    saved: gr.Markdown
    waiting: gr.Markdown


def statement_tab(h: DemoHandlers) -> gr.Markdown:
    """Build the single-statement tab; returns the corrections counter to refresh on load."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            statement, classify = statement_input(h.limits.max_chars)
            explanation = [
                gr.HighlightedText(label="Why: words that pushed the predicted stance",
                                   show_legend=True, show_inline_category=False,
                                   elem_id="explanation"),
                gr.Markdown(label="Explanation", elem_id="explanation-summary"),
            ]
        with gr.Column(scale=2):
            outputs, guideline = prediction_outputs(h.runner)
    examples = gr.Examples([list(e) for e in EXAMPLES], inputs=[statement, guideline],
                           examples_per_page=len(EXAMPLES),
                           label="Examples (click one: it is classified at once)")
    fixes, save, saved, waiting = corrections_box(h.runner)
    with gr.Accordion("What the labels mean", open=False):
        gr.Markdown(LABEL_GUIDE)
    with gr.Accordion("Raw output (JSON)", open=False):
        outputs.append(gr.JSON(label="Prediction"))
    tab = StatementTab(statement, classify, guideline, outputs, explanation, examples, fixes,
                       save, saved, waiting)
    wire_statement_events(h, tab)
    return waiting


def statement_input(max_chars: int) -> tuple[gr.Textbox, gr.Button]:
    statement = gr.Textbox(
        label="Statement", lines=3, max_lines=12,
        placeholder="e.g. We are ready to talk, but the other side keeps stalling.",
        info=f"One sentence or quote; at most {max_chars:,} characters.", elem_id="statement",
    )
    with gr.Row():
        classify = gr.Button("Classify", variant="primary", elem_id="classify")
        gr.ClearButton([statement], value="Clear")
    return statement, classify


def prediction_outputs(runner: ModelRunner) -> tuple[list, gr.Textbox]:
    """Stance and sentiment with their probabilities, the score, the confidence note."""
    outputs = [
        gr.Label(label="Stance", num_top_classes=len(runner.stance_labels), elem_id="stance"),
        gr.Label(label="Sentiment", num_top_classes=len(runner.sentiment_labels),
                 elem_id="sentiment"),
        gr.Slider(-1, 1, value=0, step=0.001, interactive=False,
                  label="Sentiment score (−1 negative … +1 positive)", elem_id="sentiment-score"),
        gr.Markdown(label="Confidence", elem_id="confidence-note"),
    ]
    guideline = gr.Textbox(label="Guideline label (examples only)", interactive=False,
                           elem_id="guideline")
    return outputs, guideline


def corrections_box(runner: ModelRunner) -> tuple[list, gr.Button, gr.Markdown, gr.Markdown]:
    with gr.Accordion("Wrong? Give the right labels (saved for retraining)", open=False,
                      elem_id="corrections"):
        gr.Markdown("Correct the statement in the box above. Choose the right stance, the right "
                    "sentiment, or both; a later correction of the same statement replaces "
                    "the earlier one.")
        fixes = [gr.Radio(runner.stance_labels, label="Right stance", elem_id="fix-stance"),
                 gr.Radio(runner.sentiment_labels, label="Right sentiment",
                          elem_id="fix-sentiment")]
        save = gr.Button("Save correction", elem_id="save-correction")
        saved = gr.Markdown(label="Correction", elem_id="correction-status")
    # Outside the accordion, so the count is in view without opening it.
    waiting = gr.Markdown(label="Corrections waiting", elem_id="corrections-waiting")
    return fixes, save, saved, waiting


def wire_statement_events(h: DemoHandlers, tab: StatementTab) -> None:
    """Classify (button, Enter, or an example click), then explain; corrections; resets."""
    predicted = gr.on([tab.classify.click, tab.statement.submit], h.predict, tab.statement,
                      tab.outputs, api_name="predict",
                      api_description="Stance and sentiment of one statement.")
    predicted.success(h.explain, tab.statement, tab.explanation, api_name="explain",
                      api_description="Word-occlusion explanation of the predicted stance.")
    from_example = tab.examples.load_input_event.then(h.predict, tab.statement, tab.outputs,
                                                      api_visibility="private")
    from_example.success(h.explain, tab.statement, tab.explanation, api_visibility="private")
    # A new prediction clears the correction box, so no label meant for the previous
    # statement is saved for this one by accident.
    for event in (predicted, from_example):
        event.then(lambda: (None, None, ""), None, [*tab.fixes, tab.saved],
                   api_visibility="private", queue=False)
    tab.statement.input(lambda: "", None, tab.guideline, api_visibility="private", queue=False)
    tab.save.click(h.correct, [tab.statement, *tab.fixes], [tab.saved, tab.waiting],
                   api_name="correct",
                   api_description="Save the right stance and/or sentiment for a statement.")


def batch_tab(h: DemoHandlers) -> None:
    limits = h.limits
    gr.Markdown(
        f"Score up to {limits.max_rows:,} statements at once: paste one per line, or upload a "
        f"CSV, TSV, JSONL or Parquet file (at most {limits.max_bytes / 2**20:.0f} MB) with a "
        "text column and, optionally, an id column. The scored file has every input column "
        "plus the model's labels and probabilities, like `detente score`; rows that cannot be "
        "scored keep their place with the reason in `error`."
    )
    with gr.Row(equal_height=False):
        pasted = gr.Textbox(label="Statements, one per line", lines=8, max_lines=16,
                            elem_id="batch-text", scale=3)
        with gr.Column(scale=2):
            upload = gr.File(label="…or a file (used instead of the pasted lines)",
                             file_types=[".csv", ".tsv", ".jsonl", ".json", ".ndjson",
                                         ".parquet"], elem_id="batch-file")
            with gr.Row():
                text_column = gr.Textbox(value="text", label="Text column")
                id_column = gr.Textbox(value="id", label="Id column (optional)")
    run = gr.Button("Score", variant="primary", elem_id="batch-run")
    summary = gr.Markdown(label="Summary", elem_id="batch-summary")
    with gr.Row():
        stance_plot = gr.Plot(label="Stance distribution", format="png")
        sentiment_plot = gr.Plot(label="Sentiment scores", format="png")
    table = gr.Dataframe(label="Scored statements", wrap=True, max_height=480,
                         interactive=False, elem_id="batch-table")
    scored_file = gr.File(label="Download the scored file", interactive=False,
                          elem_id="batch-download")
    run.click(h.batch, [pasted, upload, text_column, id_column],
              [summary, table, stance_plot, sentiment_plot, scored_file], api_name="batch",
              api_description="Score many statements: pasted lines or an uploaded file.",
              concurrency_limit=1, concurrency_id="batch")


def concurrency_limit() -> int:
    """Requests handled at once: one per core (the model lock runs one forward pass at a
    time, so more only wait inside the server instead of in the visible queue)."""
    return max(1, min(os.cpu_count() or 1, 4))


def prepare_demo(
    classifier: Classifier,
    *,
    corrections_path: str | Path | None = None,
    limits: BatchLimits | None = None,
) -> gr.Blocks:
    """The demo with its private upload folder and its queue: ready to launch or to mount.

    ``launch`` serves it on its own; ``detente serve`` mounts it beside the HTTP API with
    ``gr.mount_gradio_app(app, demo, path, **serving_options(limits))``.
    """
    private_upload_folder()
    demo = build_demo(classifier, corrections_path=corrections_path, limits=limits)
    demo.queue(default_concurrency_limit=concurrency_limit(), max_size=64)
    return demo


def serving_options(limits: BatchLimits) -> dict:
    """How the demo is served, launched or mounted: offline, no SSR or PWA, no MCP server."""
    return dict(
        show_error=True, max_file_size=limits.max_bytes, ssr_mode=False, pwa=False,
        mcp_server=False, run_history=False, enable_monitoring=False,
        footer_links=["api", "settings"], theme=gr.themes.Default(primary_hue="teal"),
    )


def launch(
    classifier: Classifier,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    corrections_path: str | Path | None = None,
    limits: BatchLimits | None = None,
    block: bool = True,
    open_browser: bool = False,
) -> gr.Blocks:
    """Serve the demo like ``detente demo``; ``block=False`` returns once it is up (tests)."""
    limits = limits or BatchLimits()
    demo = prepare_demo(classifier, corrections_path=corrections_path, limits=limits)
    demo.launch(
        server_name=host, server_port=port, share=False, inbrowser=open_browser,
        prevent_thread_lock=True, quiet=True, **serving_options(limits),
    )
    if block:
        print(f"detente demo running at {demo.local_url} (offline; Ctrl+C to stop)", flush=True)
        demo.block_thread()
    return demo
