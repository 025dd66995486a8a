"""The walkthrough notebook: committed without outputs, and it runs top to bottom.

The run is slow (real default model, an evaluation and a one-epoch retraining), so it is
marked ``slow``; the check on the committed file is instant and always runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"
CELL_TIMEOUT_S = 900  # per cell; the retraining cell is the longest (about a minute)


def code_cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {cell.id: cell for cell in nb.cells if cell.cell_type == "code"}


def test_committed_notebook_is_valid_and_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert cells, "the notebook has no code cells"
    with_output = [c.id for c in cells if c.outputs or c.execution_count is not None]
    assert with_output == [], f"strip the outputs of cells {with_output} before committing"
    # Notebook-level leftovers of a run (widget state) do not belong in git either.
    assert "widgets" not in nb.metadata


def outputs_text(cell) -> str:
    """Everything a cell printed or displayed as text (stream, text/plain, text/html)."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out:
            parts += [out.data.get("text/plain", ""), out.data.get("text/html", "")]
    return "\n".join(parts)


def images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.outputs)


@pytest.mark.slow
def test_walkthrough_runs_top_to_bottom(default_model_dir, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    # The kernel is the venv's own ipykernel ("python3" resolves to this interpreter).
    assert "python3" in KernelSpecManager().find_kernel_specs()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    print(f"walkthrough ran in {time.perf_counter() - started:.0f} s")

    cells = code_cells(nb)
    errors = [c.id for c in cells.values() for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert str(default_model_dir) in outputs_text(cells["load"])
    labelled = outputs_text(cells["classify"])
    assert all(label in labelled for label in ("pro_negotiation", "accusatory", "neutral"))
    assert "12 rows (1 with an error)" in outputs_text(cells["score"])
    assert images(cells["plots"]) == 1
    assert "baseline: tfidf_logreg" in outputs_text(cells["evaluate"])
    assert "confusion_stance.png" in outputs_text(cells["confusion"])
    assert images(cells["confusion"]) == 1
    comparison = outputs_text(cells["retrain"])
    assert "original_test" in comparison and "new_holdout" in comparison
    assert "before" in outputs_text(cells["compare"])
    # Everything went to the notebook's own temporary folder, which it removed at the end.
    assert list(tmp_path.iterdir()) == []
    removed = outputs_text(cells["cleanup"]).split("removed", 1)[1].strip()
    assert not Path(removed).exists()
