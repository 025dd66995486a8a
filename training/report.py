"""Rendering an evaluation's metrics as a Markdown report with its figures."""

from __future__ import annotations

from model.labels import HEADS


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def summary_table(metrics: dict) -> str:
    lines = ["| system | stance acc | stance macro-F1 | sentiment acc | sentiment macro-F1 | "
             "sentiment Spearman |", "|---|---|---|---|---|---|"]
    systems = [("**detente model**", {h: metrics.get(h, {}) for h in HEADS})]
    systems += list(metrics.get("baselines", {}).items())
    for name, heads in systems:
        s, m = heads.get("stance", {}), heads.get("sentiment", {})
        lines.append(f"| {name} | {fmt(s.get('accuracy'))} | {fmt(s.get('macro_f1'))} | "
                     f"{fmt(m.get('accuracy'))} | {fmt(m.get('macro_f1'))} | "
                     f"{fmt(m.get('spearman'))} |")
    return "\n".join(lines)


def per_class_table(head: str, scores: dict) -> str:
    lines = [f"| {head} label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, s in scores.get("per_class", {}).items():
        lines.append(f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | "
                     f"{s['support']} |")
    return "\n".join(lines)


def errors_table(errors: list[dict]) -> str:
    lines = ["| head | gold | predicted | confidence | text |", "|---|---|---|---|---|"]
    for e in errors:
        text = e["text"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {e['head']} | {e['gold']} | {e['predicted']} | {e['confidence']:.2f} | "
                     f"{text} |")
    return "\n".join(lines)


def source_table(metrics: dict) -> str:
    """Model and baselines per ``source`` (present when the file has that column)."""
    lines = ["| source | rows | stance macro-F1 | sentiment macro-F1 | TF-IDF+LR stance | "
             "VADER sentiment |", "|---|---|---|---|---|---|"]
    for source, scores in sorted(metrics.get("by_source", {}).items()):
        base = scores.get("baselines", {})
        lines.append(
            f"| {source} | {scores.get('rows')} | "
            f"{fmt(scores.get('stance', {}).get('macro_f1'))} | "
            f"{fmt(scores.get('sentiment', {}).get('macro_f1'))} | "
            f"{fmt(base.get('tfidf_logreg', {}).get('stance', {}).get('macro_f1'))} | "
            f"{fmt(base.get('vader', {}).get('sentiment', {}).get('macro_f1'))} |")
    return "\n".join(lines)


def render_report(metrics: dict, figures: list[str], errors: list[dict]) -> str:
    parts = [
        "# detente evaluation report", "",
        f"Model `{metrics.get('model')}` (version `{metrics.get('model_version')}`) on "
        f"`{metrics.get('data')}` (split: {metrics.get('split')}, {metrics.get('rows')} rows).",
        "", "Baselines are trained on the same training rows and scored on the same rows.", "",
        summary_table(metrics), "",
    ]
    if metrics.get("by_source"):
        parts += ["## Per source", "", source_table(metrics), ""]
    for head in HEADS:
        scores = metrics.get(head, {})
        if scores:
            parts += [f"## {head}", "", per_class_table(head, scores), "",
                      f"Expected calibration error: {fmt(scores.get('ece'))}", ""]
            parts += [f"![{name}]({name})" for name in figures if f"_{head}." in name]
            parts.append("")
    parts += [f"## The {len(errors)} most confident errors", "", errors_table(errors), ""]
    return "\n".join(parts)
