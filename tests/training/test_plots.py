"""Report figures: real PNG files, drawn without touching the process-wide matplotlib backend."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from training.plots import confusion_matrix_png, reliability_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_figures_are_png_files(tmp_path):
    labels = ["pro_negotiation", "accusatory", "neutral"]
    gold = ["neutral", "accusatory", "neutral", "pro_negotiation"]
    pred = ["neutral", "neutral", "neutral", "pro_negotiation"]
    confusion = confusion_matrix_png(gold, pred, labels, "stance", tmp_path / "c.png")
    probs = np.array([[0.2, 0.1, 0.7], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]])
    reliability = reliability_png(probs, np.array([2, 1, 2, 0]), "stance", tmp_path / "r.png")
    for path in (confusion, reliability):
        assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_importing_the_package_keeps_the_callers_matplotlib_backend():
    # A notebook's inline backend must survive `from serve import ...`: forcing Agg at import
    # time made the walkthrough's plt.show() draw nothing.
    code = (
        "import matplotlib, serve, serve.cli, training.evaluation, training.plots; "
        "print(matplotlib.get_backend())"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().lower() == "svg"
