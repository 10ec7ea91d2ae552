"""Every notebook in notebooks/ executes fresh and produces its figures (PNG files and outputs)."""

import os
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_four_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_draws(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DPSIM_FIGURES", str(tmp_path))  # the kernel inherits it
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # The kernel imports this checkout's dpsim (not whatever an installed copy points at).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                  os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
    assert pngs, f"{path.name} displayed no figure"
    files = list(tmp_path.glob("*.png"))
    assert files and all(f.stat().st_size > 5000 for f in files), files
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
