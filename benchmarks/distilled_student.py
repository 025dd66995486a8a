"""A 3-layer student distilled from the default model: how much faster, how much worse.

Issue 5 names a smaller student as the lever beyond int8. This script measures it, side by
side with its teacher, in one process, and changes nothing the project ships:

1. The student is the teacher with only some of its encoder layers (``--keep``, default
   0, 2 and 4 of 6): the embeddings, the kept layers and both heads start from the
   teacher's fine-tuned weights, so it starts close and learns fast.
2. It is trained on the corpus's train split to match the teacher's logits (KL divergence
   at temperature ``--temperature``, both heads, scaled by T^2) plus the gold labels
   (cross-entropy, weight ``--gold-weight``). Its calibration temperatures are refitted on
   the validation split, as ``detente train`` does.
3. Reported on the test split (never used above): accuracy and macro-F1 of both heads for
   teacher and student, the student's label agreement with the teacher, and statements/s
   of both through ONNX Runtime fp32 and per-channel dynamic int8, on the same test
   statements, alternating rounds, best of ``--rounds``.

    .venv/bin/python benchmarks/distilled_student.py

Results: ``benchmarks/results/distilled_student.json`` and ``.md``. About 3 minutes on 2
CPU cores; run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="teacher model folder (default: the default model)")
    parser.add_argument("--keep", default="0,2,4",
                        help="comma-separated encoder layers the student keeps")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=2.0,
                        help="softmax temperature of the distillation loss")
    parser.add_argument("--gold-weight", type=float, default=0.5,
                        help="weight of the gold-label cross-entropy beside the KL term")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    return parser.parse_args(argv)


def corpus_splits() -> dict[str, list[dict]]:
    from model.paths import bundled_corpus

    rows = [json.loads(line) for line in bundled_corpus().read_text("utf-8").splitlines()
            if line.strip()]
    return {name: [r for r in rows if r.get("split") == name]
            for name in ("train", "validation", "test")}


def make_student(teacher, keep: list[int]):
    """The teacher with only the encoder layers in ``keep``, every weight copied."""
    import torch

    student = copy.deepcopy(teacher)
    layers = student.encoder.encoder.layer
    student.encoder.encoder.layer = torch.nn.ModuleList([layers[i] for i in keep])
    student.encoder.config.num_hidden_layers = len(keep)
    student.config.encoder["num_hidden_layers"] = len(keep)
    return student


def distill(student, teacher_logits, texts, gold, tokenizer, args) -> list[float]:
    """Plain AdamW with linear decay; returns the mean loss of each epoch."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.learning_rate, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(texts) / args.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / steps)
    t = args.temperature
    student.train()
    losses = []
    for _epoch in range(args.epochs):
        order = rng.permutation(len(texts))
        total = 0.0
        for start in range(0, len(order), args.batch_size):
            rows = order[start:start + args.batch_size]
            batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                              max_length=student.config.max_seq_length, return_tensors="pt")
            out = student(**batch)
            loss = 0.0
            for head, logits in (("stance", out.stance_logits),
                                 ("sentiment", out.sentiment_logits)):
                target = torch.from_numpy(teacher_logits[head][rows])
                loss = loss + F.kl_div(F.log_softmax(logits / t, -1),
                                       F.softmax(target / t, -1), reduction="batchmean") * t * t
                labels = torch.tensor(gold[head][rows])
                loss = loss + args.gold_weight * F.cross_entropy(logits, labels, ignore_index=-100)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / len(texts))
        print(f"epoch {len(losses)}/{args.epochs}: loss {losses[-1]:.4f}", file=sys.stderr)
    student.eval()
    return losses


def head_report(logits: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    from training.metrics import logit_scores

    return logit_scores(logits, gold)


def throughput(backends: dict, texts: list[str], rounds: int) -> dict[str, float]:
    """Statements/s of each backend on ``texts``: alternating rounds, best of ``rounds``.

    ``backends`` are ``Classifier``s, so each is timed as ``detente score`` runs it.
    """
    best = {name: 0.0 for name in backends}
    for backend in backends.values():
        backend.predict_proba(texts[:64])  # warm-up
    for _ in range(rounds):
        for name, backend in backends.items():
            started = time.perf_counter()
            backend.predict_proba(texts)
            best[name] = max(best[name], len(texts) / (time.perf_counter() - started))
    return best


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from model.backends import cache, open_resolved, resolve_backend
    from model.backends.onnx_runtime import open_session
    from model.backends.quantize import Int8Config, quantize_int8
    from model.classifier import Classifier
    from model.persistence import save_model
    from serve.loading import model_folder
    from training.calibration import fit_temperature
    from training.metrics import encode_labels

    load_before = [round(x, 2) for x in os.getloadavg()]
    teacher_dir = model_folder(args.model).resolve()
    teacher = Classifier.load(teacher_dir)
    config = teacher.config
    labels = {"stance": config.stance_labels, "sentiment": config.sentiment_labels}
    splits = corpus_splits()
    texts = {name: [r["text"] for r in rows] for name, rows in splits.items()}
    gold = {name: {head: encode_labels([r.get(head) for r in rows], labels[head])
                   for head in labels} for name, rows in splits.items()}

    def logits_of(classifier, split: str) -> dict[str, np.ndarray]:
        stance, sentiment = classifier.predict_logits(texts[split], args.batch_size)
        return {"stance": stance, "sentiment": sentiment}

    teacher_train = logits_of(teacher, "train")
    keep = [int(k) for k in args.keep.split(",")]
    student_model = make_student(teacher.model, keep)
    started = time.perf_counter()
    losses = distill(student_model, teacher_train, texts["train"], gold["train"],
                     teacher.tokenizer, args)
    train_seconds = time.perf_counter() - started
    student = Classifier.from_model(student_model, teacher.tokenizer)
    validation = logits_of(student, "validation")
    config_s = student_model.config
    config_s.stance_temperature = fit_temperature(validation["stance"],
                                                  gold["validation"]["stance"])
    config_s.sentiment_temperature = fit_temperature(validation["sentiment"],
                                                     gold["validation"]["sentiment"])

    quality = {}
    test_logits = {"teacher": logits_of(teacher, "test"), "student": logits_of(student, "test")}
    for name, logits in test_logits.items():
        quality[name] = {head: head_report(logits[head], gold["test"][head]) for head in labels}
    agreement = {head: float((test_logits["student"][head].argmax(1)
                              == test_logits["teacher"][head].argmax(1)).mean())
                 for head in labels}

    with tempfile.TemporaryDirectory() as work:
        student_dir = save_model(student_model, teacher.tokenizer, Path(work) / "student")
        backends = {}
        for who, folder in (("teacher", teacher_dir), ("student", Path(student_dir))):
            fp32 = open_resolved(resolve_backend(folder, "onnx"))
            backends[f"{who} onnx fp32"] = Classifier(fp32, path=folder)
            version = fp32.model_version
            graph = Path(work) / f"{who}.int8.onnx"  # not in the teacher's cache: a what-if
            quantize_int8(cache.ensure_fp32(folder, version), graph, Int8Config(True))
            int8 = open_session(graph, teacher.tokenizer, config if who == "teacher"
                                else config_s, version, "onnx-int8")
            backends[f"{who} onnx int8"] = Classifier(int8, path=folder)
        speed = throughput(backends, texts["test"], args.rounds)
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "teacher": str(teacher_dir), "teacher_version": teacher.model_version,
        "student_layers": keep, "teacher_layers": teacher.model.encoder.config.num_hidden_layers,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "train_rows": len(texts["train"]), "test_rows": len(texts["test"]),
        "train_seconds": round(train_seconds, 1), "epoch_losses": losses,
        "student_temperatures": [config_s.stance_temperature, config_s.sentiment_temperature],
        "quality": quality, "student_agreement_with_teacher": agreement,
        "statements_per_s": speed,
        "machine": {"cpus": os.cpu_count(), "load_before": load_before,
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
        "note": args.note,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distilled_student.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "distilled_student.md").write_text(to_markdown(report))
    print(to_markdown(report))
    return 0


def to_markdown(report: dict) -> str:
    q, speed = report["quality"], report["statements_per_s"]
    lines = [
        "# A distilled student vs its teacher",
        "",
        f"Teacher `{report['teacher']}` (weights {report['teacher_version']}, "
        f"{report['teacher_layers']} layers); student: layers {report['student_layers']} of it, "
        f"distilled on {report['train_rows']:,} train statements in "
        f"{report['train_seconds']:.0f} s. Test split: {report['test_rows']} statements "
        f"(unseen disputes). 2 CPUs, load average {report['machine']['load_before']} before, "
        f"{report['machine']['load_after']} after.",
        "",
        "| model | stance acc | stance macro-F1 | sentiment acc | sentiment macro-F1 |",
        "|---|---|---|---|---|",
    ]
    for who in ("teacher", "student"):
        s, t = q[who]["stance"], q[who]["sentiment"]
        lines.append(f"| {who} | {s['accuracy']:.3f} | {s['macro_f1']:.3f} | "
                     f"{t['accuracy']:.3f} | {t['macro_f1']:.3f} |")
    agree = report["student_agreement_with_teacher"]
    lines += ["", f"Student labels equal to the teacher's on the test split: stance "
              f"{agree['stance']:.2%}, sentiment {agree['sentiment']:.2%}.", "",
              "| backend | statements/s | vs teacher onnx fp32 |", "|---|---|---|"]
    base = speed["teacher onnx fp32"]
    for name, rate in speed.items():
        lines.append(f"| {name} | {rate:.0f} | {rate / base:.2f}x |")
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
