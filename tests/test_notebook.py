"""notebooks/ablations.ipynb runs top to bottom (smoke mode) and writes its three sweep figures.

About two minutes on 2 CPU cores, most of it the smoke generator; the notebook's sweeps are the
smallest in smoke mode (DENSESYNTH_NOTEBOOK_SMOKE=1).
"""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "ablations.ipynb"


def test_notebook_is_committed_clean():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  assert nb.nbformat == 4
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, "clear the notebook's outputs"


@pytest.mark.slow
def test_ablations_notebook_runs_in_smoke_mode(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # one host device, as in tests/test_demo_smoke.py
  env["DENSESYNTH_NOTEBOOK_SMOKE"] = "1"
  env["DENSESYNTH_NOTEBOOK_WORKDIR"] = str(tmp_path)
  env.setdefault("MPLBACKEND", "Agg")
  client = NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(NOTEBOOK.parent)}})
  client.execute(env=env)  # raises CellExecutionError naming the cell on any failure

  for sweep in ("delta", "ratio", "k"):
    path = tmp_path / f"ablation_{sweep}.png"
    assert path.is_file(), f"{path} not written"
    with Image.open(path) as im:
      im.verify()
    with Image.open(path) as im:
      assert im.format == "PNG" and min(im.size) > 100
  # One generator for every sweep point; each point has its own ranker cells and results.
  assert (tmp_path / "generator" / "generator_eval.json").is_file()
  points = sorted(p for sweep in ("delta", "ratio", "k") for p in (tmp_path / sweep).iterdir()
                  if p.is_dir())
  assert len(points) >= 6
  for p in points:
    assert not (p / "generator").exists()
    results = json.loads((p / "results.json").read_text())
    assert results["cells"] and (p / "rankers").is_dir()
    assert (p / "figures" / "accuracy_test_fine.png").is_file()  # the runner's bar figure
  # The swept values reached the runs.
  ks = {c["ranker_info"]["k"] for p in (tmp_path / "k").iterdir()
        for c in json.loads((p / "results.json").read_text())["cells"]}
  assert len(ks) >= 2
  # The figures were shown inline too.
  shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
           if "image/png" in o.get("data", {})]
  assert len(shown) >= 3
