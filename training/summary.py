"""The terminal summary of a training run: the final numbers as a small table.

Apart from the training run so that what ``detente train`` prints can change without
touching how it trains (``training.trainer`` re-exports ``format_summary`` for its callers).
"""

from __future__ import annotations

from training.backend_selection import describe_selection


def format_summary(metrics: dict) -> str:
    """A small table of the final numbers for the terminal."""
    rows = [("split", "head", "accuracy", "macro-F1")]
    for split in ("validation", "test"):
        for head, scores in metrics.get(split, {}).items():
            if scores:
                rows.append((split, head, f"{scores['accuracy']:.3f}", f"{scores['macro_f1']:.3f}"))
    for head, cal in metrics.get("calibration", {}).items():
        if cal:
            rows.append(("calibration", head, f"T={cal['temperature']:.2f}",
                         f"ECE {cal['ece_before']:.3f}->{cal['ece_after']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    selection = metrics.get("backend_selection")
    if selection:
        lines.append(f"backend selection failed ({selection['error']}); --backend auto runs "
                     "ONNX fp32" if "error" in selection else describe_selection(selection))
    return "\n".join(lines)
