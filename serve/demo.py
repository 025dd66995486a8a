"""The Gradio demo: one statement with an explanation, batch scoring, corrections, the model card.

``build_demo(classifier)`` returns the ``gr.Blocks`` app; ``launch(classifier)`` serves it the
way ``detente demo`` does. Everything runs on this machine: analytics and Hub telemetry are
switched off before gradio is imported, there is no share link, and the default theme serves
its own fonts. Each action is a named API endpoint (``/predict``, ``/explain``, ``/batch``,
``/correct``) for ``gradio_client``. This module lays out the page and serves it; what each
event does is ``serve.demo_handlers``.
"""

from __future__ import annotations

import serve.demo_offline  # noqa: F401 - first: gradio and the Hub read it on import

# isort: split
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from model.classifier import Classifier
from serve.arguments import DEFAULT_HOST, DEFAULT_PORT
from serve.corrections import CorrectionStore
from serve.demo_about import about_tab, model_line
from serve.demo_batch import BatchLimits
from serve.demo_content import EXAMPLES, INTRO, LABEL_GUIDE
from serve.demo_handlers import DOWNLOAD_MAX_AGE_S, DemoHandlers, new_download_folder
from serve.demo_runner import ModelRunner

__all__ = ["DemoHandlers", "build_demo", "launch", "prepare_demo", "serving_options"]


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
