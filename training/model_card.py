"""The model card (README.md in Hugging Face format) written into every trained model folder."""

from __future__ import annotations

from pathlib import Path

from model.config import DetenteConfig
from training.evaluation import SELECTED_GROUP
from training.metrics import MACRO_F1_DEFINITION
from training.report import fmt

LABEL_DEFINITIONS = """\
| stance | the speaker ... |
|---|---|
| `pro_negotiation` | offers, welcomes, calls for or agrees to talks, mediation, a ceasefire, a peace plan, de-escalation or compromise (also conditional offers, third parties urging talks, reported peace steps) |
| `accusatory` | blames, accuses, condemns or attributes wrongdoing or hostile intent to an identifiable party |
| `neutral` | does neither: factual reports naming no perpetrator, procedure, resolve, threats without blame, questions, thanks |

Sentiment is the overall tone (`negative`, `neutral`, `positive`); `sentiment_score` is
P(positive) - P(negative). Full guideline with tie-breaks: `docs/labels.md`."""


SPLIT_ORDER = ("test", "test_unseen", "validation")


def _f1(scores: dict | None, head: str) -> str:
    value = (scores or {}).get(head, {}).get("macro_f1")
    return f"{value:.3f}" if value is not None else "—"


def _baseline_f1(scores: dict, name: str, head: str) -> str:
    return _f1(scores.get("baselines", {}).get(name), head)


def source_rows(by_source: dict, split: str, sources: list[str]) -> list[str]:
    """One table row per source of a split: model and baselines side by side."""
    rows = []
    for source in sources:
        scores = by_source.get(split, {}).get(source)
        if not scores:
            continue
        name = "all real sources" if source == SELECTED_GROUP else source
        rows.append(
            f"| {split} | {name} | {scores['rows']} | **{_f1(scores, 'stance')}** | "
            f"**{_f1(scores, 'sentiment')}** | {_baseline_f1(scores, 'tfidf_logreg', 'stance')} | "
            f"{_baseline_f1(scores, 'tfidf_logreg', 'sentiment')} | "
            f"{_baseline_f1(scores, 'vader', 'sentiment')} |")
    return rows


TABLE_HEAD = [
    "| split | source | rows | stance macro-F1 | sentiment macro-F1 | TF-IDF+LR stance | "
    "TF-IDF+LR sentiment | VADER sentiment |",
    "|---|---|---|---|---|---|---|---|",
]


def real_table(metrics: dict) -> str:
    """The headline: real statements, per split and source (selection sources first)."""
    by_source = metrics.get("by_source", {})
    selected = metrics.get("selection_sources") or []
    lines = list(TABLE_HEAD)
    for split in SPLIT_ORDER:
        lines += source_rows(by_source, split, [SELECTED_GROUP, *selected])
    return "\n".join(lines) if len(lines) > 2 else "(no real-statement rows in this run)"


def other_table(metrics: dict) -> str:
    """Every other source (the written corpus, rated news sentences ...)."""
    by_source = metrics.get("by_source", {})
    selected = set(metrics.get("selection_sources") or []) | {SELECTED_GROUP}
    lines = list(TABLE_HEAD)
    for split in SPLIT_ORDER:
        others = sorted(set(by_source.get(split, {})) - selected)
        lines += source_rows(by_source, split, others)
    return "\n".join(lines) if len(lines) > 2 else "(none)"


def rating_table(metrics: dict) -> str:
    """Spearman correlation with the mean human rating, where rows carry one."""
    lines = ["| split | source | rows | model sentiment_score | VADER compound |",
             "|---|---|---|---|---|"]
    for split in SPLIT_ORDER:
        for source, scores in sorted(metrics.get("by_source", {}).get(split, {}).items()):
            rated = scores.get("rated")
            if rated:
                lines.append(f"| {split} | {source} | {rated['n']} | "
                             f"**{fmt(rated['model_spearman'])}** | {fmt(rated['vader_spearman'])} |")
    return "\n".join(lines) if len(lines) > 2 else "(no rated rows in this run)"


def metrics_table(metrics: dict) -> str:
    """Scores over each whole split (all sources together)."""
    lines = ["| split | head | accuracy | macro-F1 |", "|---|---|---|---|"]
    for split in ("validation", "test"):
        for head, scores in metrics.get(split, {}).items():
            if scores:
                lines.append(
                    f"| {split} | {head} | {scores['accuracy']:.3f} | {scores['macro_f1']:.3f} |"
                )
    return "\n".join(lines)


def calibration_table(metrics: dict) -> str:
    lines = ["| head | temperature | ECE before | ECE after |", "|---|---|---|---|"]
    for head, cal in metrics.get("calibration", {}).items():
        if cal:
            lines.append(f"| {head} | {cal['temperature']:.2f} | {cal['ece_before']:.3f} | "
                         f"{cal['ece_after']:.3f} |")
    return "\n".join(lines)


def data_lines(metrics: dict) -> str:
    names = [Path(p).name for p in metrics.get("data", [])]
    return ", ".join(f"`{n}`" for n in names) or "the training data"


def held_out_note(rows: dict) -> str:
    extra = {k: v for k, v in rows.items() if k.startswith("test_")}
    return "".join(f", {v} `{k}` rows" for k, v in extra.items())


def render_model_card(config: DetenteConfig, metrics: dict, data_paths: object = None) -> str:
    rows = metrics.get("rows", {})
    return f"""---
language: en
license: apache-2.0
library_name: transformers
pipeline_tag: text-classification
base_model: {config.base_model}
tags: [stance-detection, sentiment-analysis, detente]
---

# detente stance & sentiment model

One fine-tuned encoder (`{config.base_model}`) with two heads: stance
({", ".join(config.stance_labels)}) and sentiment ({", ".join(config.sentiment_labels)}),
both from one forward pass over mean-pooled token vectors (max {config.max_seq_length} tokens).

## Labels

{LABEL_DEFINITIONS}

## Training data

{data_lines(metrics)}: {rows.get("train", "?")} training rows, {rows.get("validation", "?")}
validation rows, {rows.get("test", "?")} test rows{held_out_note(rows)}. The validation rows of
{", ".join(metrics.get("selection_sources") or []) or "every source"} chose the epoch, the
temperatures and the scoring backend. See `data/README.md` for how each file was made.

## Results on real statements

Real sentences that no one here wrote, labelled twice under the guideline and adjudicated.
Splits are by document; `test_unseen` is a whole source slice that neither training nor any
model choice saw. {MACRO_F1_DEFINITION}

{real_table(metrics)}

Sentiment against the mean of human ratings (Spearman; documents never trained on):

{rating_table(metrics)}

## Results on other sources

The written corpus (`statements`, split by dispute) and the other training sources. Written
text is cleaner than real news: these numbers overstate quality on real text.

{other_table(metrics)}

Over each whole split (all sources together; the validation row is the selection rows):

{metrics_table(metrics)}

Calibration (temperature scaling fitted on validation; expected calibration error, 15 bins):

{calibration_table(metrics)}

## Intended use and limits

- English political statements: quotes and sentences from war and diplomacy news, one
  statement at a time. Not documents: long texts are split into windows by `detente score`.
- Real-text quality is the real-statement table above; the written corpus's numbers are
  higher and overstate it. Evaluate on your own labelled sample (`detente evaluate`) before
  relying on it.
- Sentiment is the tone of the text, not a judgement of any party.
- Not for automated decisions about people.

## Use

```python
from model import Classifier
clf = Classifier.load("path/to/this/folder")
print(clf.predict(["Our door to talks remains open."])[0])
```
"""


def write_model_card(
    folder: Path, config: DetenteConfig, metrics: dict, data_paths: object = None
) -> Path:
    path = folder / "README.md"
    path.write_text(render_model_card(config, metrics, data_paths), encoding="utf-8")
    return path
