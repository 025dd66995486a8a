"""What moves quality on real statements: training-data and recipe variants, side by side.

Each variant trains a model in this process (one after the other, so wall times compare)
and every model is scored the same way on the bundled real-statement set: validation (what
chooses), test and test_unseen (reported), per source; on the vader_nyt held-out editorials
(Spearman of sentiment_score with the mean human rating, VADER's compound beside it); and
on the written corpus's test split (the regression check). Results are appended to
benchmarks/results/real_text.json; real_text.md is written from all recorded runs.

    python benchmarks/real_text.py --only written_only real_hard
    python benchmarks/real_text.py --render      # only rewrite the Markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from model.classifier import Classifier
from model.paths import repo_root
from training.arguments import TrainArguments
from training.bundled_data import REAL_SOURCES
from training.data import load_labelled
from training.evaluation import SELECTED_GROUP, metrics_by_source
from training.trainer import train

DATA = repo_root() / "data"
RESULTS = Path(__file__).resolve().parent / "results"
BASE = TrainArguments(select_backend=False, epochs=3.0)
LANDED_COMMIT = "97e2f23"  # the last landing before real-text work
EVAL_FILES = [str(DATA / name) for name in
              ("statements.jsonl", "real_statements.jsonl", "vader_nyt.jsonl")]
NEW_WRITTEN = ("w7-", "w8-")  # written in December 2026: scored apart from the landed rows


def subsample(path: Path, workdir: Path, train_rows: int, seed: int = 0, **assign) -> str:
    """A copy of a bundled file with at most ``train_rows`` train rows (other splits whole)."""
    frame = pd.read_json(path, lines=True)
    train = frame[frame["split"] == "train"]
    keep = train.sample(n=min(train_rows, len(train)), random_state=seed)
    frame = pd.concat([keep, frame[frame["split"] != "train"]]).assign(**assign)
    out = workdir / f"{path.stem}-{train_rows}{'-' + '-'.join(assign) if assign else ''}.jsonl"
    frame.to_json(out, orient="records", lines=True, force_ascii=False)
    return str(out)


def without_shares(path: Path, workdir: Path, train_rows: int) -> str:
    """vader_nyt with three-way labels only (no graded target)."""
    out = subsample(path, workdir, train_rows)
    frame = pd.read_json(out, lines=True).drop(columns=["sentiment_shares"])
    hard = Path(out).with_name(Path(out).stem + "-hard.jsonl")
    frame.to_json(hard, orient="records", lines=True, force_ascii=False)
    return str(hard)


def landed_corpus(workdir: Path) -> str:
    """The written corpus as it was before the December 2026 rows and re-checks (git)."""
    out = workdir / "statements-landed.jsonl"
    text = subprocess.run(["git", "show", f"{LANDED_COMMIT}:data/statements.jsonl"],
                          cwd=repo_root(), check=True, capture_output=True, text=True).stdout
    out.write_text(text, encoding="utf-8")
    return str(out)


def variants(workdir: Path) -> dict[str, Callable[[], dict]]:
    written, real = str(DATA / "statements.jsonl"), str(DATA / "real_statements.jsonl")
    vader, news = DATA / "vader_nyt.jsonl", DATA / "newsmtsc.jsonl"
    return {
        # The landed recipe: the written corpus alone, chosen on its own validation split.
        "landed_written_only": lambda: {"data": [landed_corpus(workdir)], "select_sources": []},
        "landed_written+real": lambda: {"data": [landed_corpus(workdir), real]},
        "written+real": lambda: {"data": [written, real]},
        "written+real+vader_soft+newsmtsc": lambda: {
            "data": [written, real, subsample(vader, workdir, 1000),
                     subsample(news, workdir, 600)]},
        "written+real+vader_hard+newsmtsc": lambda: {
            "data": [written, real, without_shares(vader, workdir, 1000),
                     subsample(news, workdir, 600)]},
        "default": lambda: {},
    }


def evaluate_model(clf: Classifier, eval_paths: list[str]) -> dict:
    """Per split and source, the same way for every variant (baselines left out: speed)."""
    frames = []
    for path in eval_paths:
        frame = load_labelled(path)
        if "source" not in frame.columns:
            frame["source"] = Path(path).stem
            new = frame["id"].astype(str).str.startswith(NEW_WRITTEN)
            frame.loc[new, "source"] = frame.loc[new, "source"] + "_2026_12"
        frames.append(frame[frame["split"] != "train"])
    rows = pd.concat(frames, ignore_index=True)
    return {split: metrics_by_source(clf, part.reset_index(drop=True), None, REAL_SOURCES)
            for split, part in rows.groupby("split")}


def run(name: str, overrides: dict, workdir: Path) -> dict:
    args = replace(BASE, output=str(workdir / name), force=True, **overrides)
    started = time.perf_counter()
    result = train(args)
    seconds = time.perf_counter() - started
    clf = Classifier.load(result.output)
    evaluation = evaluate_model(clf, EVAL_FILES)
    return {"variant": name, "overrides": {k: v for k, v in overrides.items()},
            "wall_seconds": round(seconds, 1), "rows": result.metrics["rows"],
            "evaluation": evaluation}


PATTERN_CHECKS = {
    # the five patterns, as counts on the real test rows
    "1 verbal pressure without blame (gold neutral)": (
        lambda r: r["pattern"] == "pressure" and r["stance"] == "neutral", "stance"),
    "1 verbal pressure with blame (gold accusatory)": (
        lambda r: r["pattern"] == "pressure" and r["stance"] == "accusatory", "stance"),
    "2 appeals for other things (gold neutral)": (
        lambda r: r["pattern"] == "appeal" and r["stance"] == "neutral", "stance"),
    "2 appeals for talks (gold pro_negotiation)": (
        lambda r: r["pattern"] == "appeal" and r["stance"] == "pro_negotiation", "stance"),
    "2 routine meetings (gold neutral)": (
        lambda r: r["pattern"] == "meeting" and r["stance"] == "neutral", "stance"),
    "3 attacks by a named actor (gold accusatory)": (
        lambda r: r["pattern"] == "attack_actor" and r["stance"] == "accusatory", "stance"),
    "3 attacks with no actor (gold neutral)": (
        lambda r: r["pattern"] == "attack_no_actor" and r["stance"] == "neutral", "stance"),
    "4 hedged speech sentences, not pro_negotiation": (
        lambda r: r["pattern"] == "hedged" and r["stance"] != "pro_negotiation", "stance"),
    "4 hedged speech sentences, pro_negotiation": (
        lambda r: r["pattern"] == "hedged" and r["stance"] == "pro_negotiation", "stance"),
    "5 negative sentiment without blame (stance not accusatory)": (
        lambda r: r["sentiment"] == "negative" and r["stance"] != "accusatory", "sentiment"),
    "5 positive sentiment": (lambda r: r["sentiment"] == "positive", "sentiment"),
}


def error_analysis(clf: Classifier) -> list[dict]:
    """Per pattern of the issue: how many real test rows (test + test_unseen) the model gets
    right, and what it says instead when wrong."""
    real = pd.read_json(DATA / "real_statements.jsonl", lines=True)
    rows = real[real["split"].isin(["test", "test_unseen"])].reset_index(drop=True)
    predictions = clf.predict(rows["text"].tolist())
    rows["pred_stance"] = [p.stance for p in predictions]
    rows["pred_sentiment"] = [p.sentiment for p in predictions]
    out = []
    for name, (selects, head) in PATTERN_CHECKS.items():
        part = rows[rows.apply(selects, axis=1)]
        wrong = part[part[f"pred_{head}"] != part[head]]
        instead = wrong[f"pred_{head}"].value_counts()
        out.append({"pattern": name, "rows": len(part), "wrong": len(wrong),
                    "instead": {label: int(n) for label, n in instead.items()}})
    return out


def errors_markdown(analysis: list[dict], name: str) -> str:
    lines = [f"## Error analysis of `{name}` on real test (test + test_unseen)", "",
             "| pattern (issue 11) | rows | wrong | error rate | predicted instead |",
             "|---|---|---|---|---|"]
    for a in analysis:
        rate = f"{a['wrong'] / a['rows']:.0%}" if a["rows"] else "—"
        instead = ", ".join(f"{k} {v}" for k, v in a["instead"].items()) or "—"
        lines.append(f"| {a['pattern']} | {a['rows']} | {a['wrong']} | {rate} | {instead} |")
    return "\n".join(lines) + "\n"


def f1(result: dict, split: str, source: str, head: str) -> str:
    value = result["evaluation"].get(split, {}).get(source, {}).get(head, {}).get("macro_f1")
    return "—" if value is None else f"{value:.3f}"


def rated(result: dict, split: str, key: str) -> str:
    value = result["evaluation"].get(split, {}).get("vader_nyt", {}).get("rated", {}).get(key)
    return "—" if value is None else f"{value:.3f}"


def to_markdown(results: list[dict]) -> str:
    lines = [
        "# Real text: what moved the numbers", "",
        "Every variant is trained by `benchmarks/real_text.py` and scored the same way. "
        "Real = the bundled real-statement set (`data/real_statements.jsonl`); `validation` "
        "chooses, `test` and `test_unseen` (UN General Debate 1980-89, never seen) report. "
        "Macro-F1 over the labels present. Spearman: `sentiment_score` against the mean of "
        "20 human ratings on held-out vader_nyt editorials (VADER's compound beside it).", "",
        "| variant | train rows | wall s | real val stance | real val sentiment | "
        "real test stance | real test sentiment | unseen stance | unseen sentiment | "
        "written test stance | written test sentiment | vader Spearman (test) | "
        "VADER Spearman |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['rows']['train']} | {r['wall_seconds']} | "
            f"{f1(r, 'validation', SELECTED_GROUP, 'stance')} | "
            f"{f1(r, 'validation', SELECTED_GROUP, 'sentiment')} | "
            f"{f1(r, 'test', SELECTED_GROUP, 'stance')} | "
            f"{f1(r, 'test', SELECTED_GROUP, 'sentiment')} | "
            f"{f1(r, 'test_unseen', 'ungdc', 'stance')} | "
            f"{f1(r, 'test_unseen', 'ungdc', 'sentiment')} | "
            f"{f1(r, 'test', 'statements', 'stance')} | "
            f"{f1(r, 'test', 'statements', 'sentiment')} | "
            f"{rated(r, 'test', 'model_spearman')} | {rated(r, 'test', 'vader_spearman')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    parser.add_argument("--render", action="store_true", help="only rewrite real_text.md")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--errors", nargs=2, metavar=("NAME", "FOLDER"),
                        help="error analysis per pattern of a trained model folder")
    parser.add_argument("--existing", nargs=2, metavar=("NAME", "FOLDER"),
                        help="score an already trained model folder instead of training")
    args = parser.parse_args()
    store = RESULTS / "real_text.json"
    results = json.loads(store.read_text()) if store.exists() else []
    errors_store = RESULTS / "real_text_errors.json"
    analyses = json.loads(errors_store.read_text()) if errors_store.exists() else {}
    if args.errors:
        name, folder = args.errors
        analyses[name] = error_analysis(Classifier.load(folder))
        errors_store.write_text(json.dumps(analyses, indent=1))
    if args.existing:
        name, folder = args.existing
        clf = Classifier.load(folder)
        summary = json.loads((Path(folder) / "training_summary.json").read_text())
        result = {"variant": name, "overrides": {"existing": folder}, "wall_seconds": "—",
                  "rows": summary["rows"], "evaluation": evaluate_model(clf, EVAL_FILES),
                  "note": args.note, "date": time.strftime("%Y-%m-%d %H:%M")}
        results = [r for r in results if r["variant"] != name] + [result]
        store.write_text(json.dumps(results, indent=1))
    elif not args.render and not args.errors:
        torch.set_num_threads(os.cpu_count() or 1)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            table = variants(workdir)
            for name in args.only or list(table):
                result = run(name, table[name](), workdir)
                result.update(machine=f"{os.cpu_count()} CPUs, {platform.machine()}",
                              date=time.strftime("%Y-%m-%d %H:%M"), note=args.note)
                results = [r for r in results if r["variant"] != name] + [result]
                store.write_text(json.dumps(results, indent=1))
                print(to_markdown([result]))
    notes = RESULTS / "real_text_notes.md"  # the hand-written account of what was tried
    parts = [to_markdown(results), notes.read_text(encoding="utf-8") if notes.exists() else "",
             *(errors_markdown(a, n) for n, a in analyses.items())]
    (RESULTS / "real_text.md").write_text("\n".join(parts), encoding="utf-8")


if __name__ == "__main__":
    main()
