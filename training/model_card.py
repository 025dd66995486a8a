"""The model card (README.md in Hugging Face format) written into every trained model folder."""

from __future__ import annotations

from pathlib import Path

from model.config import DetenteConfig

LABEL_DEFINITIONS = """\
| stance | the speaker ... |
|---|---|
| `pro_negotiation` | offers, welcomes, calls for or agrees to talks, mediation, a ceasefire, a peace plan, de-escalation or compromise (also conditional offers, third parties urging talks, reported peace steps) |
| `accusatory` | blames, accuses, condemns or attributes wrongdoing or hostile intent to an identifiable party |
| `neutral` | does neither: factual reports naming no perpetrator, procedure, resolve, threats without blame, questions, thanks |

Sentiment is the overall tone (`negative`, `neutral`, `positive`); `sentiment_score` is
P(positive) - P(negative). Full guideline with tie-breaks: `docs/labels.md`."""


def metrics_table(metrics: dict) -> str:
    lines = ["| split | head | accuracy | macro-F1 |", "|---|---|---|---|"]
    for split in ("validation", "test"):
        for head, scores in metrics.get(split, {}).items():
            if scores:
                lines.append(
                    f"| {split} | {head} | {scores['accuracy']:.3f} | {scores['macro_f1']:.3f} |"
                )
    baselines = metrics.get("baselines", {})
    for name, heads in baselines.items():
        for head, scores in heads.items():
            lines.append(
                f"| test (baseline: {name}) | {head} | {scores['accuracy']:.3f} | "
                f"{scores['macro_f1']:.3f} |"
            )
    return "\n".join(lines)


def calibration_table(metrics: dict) -> str:
    lines = ["| head | temperature | ECE before | ECE after |", "|---|---|---|---|"]
    for head, cal in metrics.get("calibration", {}).items():
        if cal:
            lines.append(f"| {head} | {cal['temperature']:.2f} | {cal['ece_before']:.3f} | "
                         f"{cal['ece_after']:.3f} |")
    return "\n".join(lines)


def render_model_card(config: DetenteConfig, metrics: dict, data_path: str) -> str:
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

`{Path(data_path).name}`: {rows.get("train", "?")} training rows, {rows.get("validation", "?")}
validation rows, {rows.get("test", "?")} test rows. The project's corpus is split by dispute, so
the test split measures transfer to disputes the model never saw. See `data/README.md`.

## Results

Measured on the splits above after calibration (labels are unchanged by calibration).

{metrics_table(metrics)}

Calibration (temperature scaling fitted on validation; expected calibration error, 15 bins):

{calibration_table(metrics)}

## Intended use and limits

- English political statements: quotes and sentences from war and diplomacy news, one
  statement at a time. Not documents: long texts are split into windows by `detente score`.
- The corpus is written for the project; real news differs in style. Check the test numbers
  above and evaluate on your own labelled sample (`detente evaluate`) before relying on it.
- Sentiment is the tone of the text, not a judgement of any party.
- Not for automated decisions about people.

## Use

```python
from model import Classifier
clf = Classifier.load("path/to/this/folder")
print(clf.predict(["Our door to talks remains open."])[0])
```
"""


def write_model_card(folder: Path, config: DetenteConfig, metrics: dict, data_path: str) -> Path:
    path = folder / "README.md"
    path.write_text(render_model_card(config, metrics, data_path), encoding="utf-8")
    return path
