"""The package's imports run one way: no module imports a layer above its own (ARCHITECTURE.md).

Layers, bottom to top (a package may import its own modules and any LOWER layer, never a sibling
package of its own layer, never a higher one):

  0  base:        types, io, progress, mesh, metrics, plotting, distributed, errors
  1  features, models, train (the training skeleton)
  2  data         (domain builders; pre-labels measure images with features)
  3  rankers, generator
  4  synth        (receives a loaded generator)
  5  experiments  (pools, cells, caching, tables)
  6  cli          (what the entry scripts share), predict (applies a run's saved rankers)

Imports inside functions are allowed only for third-party modules, with a comment on the line
saying why (a heavy optional dependency); never for the package's own modules.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "densesynth_jax"
BASE = {"types", "io", "progress", "mesh", "metrics", "plotting", "distributed",
        "errors"}
RANK = {"base": 0, "features": 1, "models": 1, "train": 1, "data": 2, "rankers": 3,
        "generator": 3, "synth": 4, "experiments": 5, "cli": 6, "predict": 6}


def _group(module: str) -> str:
  """'densesynth_jax.rankers.local' -> 'rankers'; base modules -> 'base'."""
  part = module.split(".")[1]
  return "base" if part in BASE else part


def _imports(path: Path):
  """(imported module, line, inside a function, line text) for every import in the file."""
  source = path.read_text()
  lines = source.splitlines()
  tree = ast.parse(source)
  nested = set()
  for fn in ast.walk(tree):
    if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
      nested |= {id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    else:
      continue
    for name in names:
      yield name, node.lineno, id(node) in nested, lines[node.lineno - 1]


def _modules():
  for path in sorted(PACKAGE.rglob("*.py")):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    yield ".".join(rel.parts).removesuffix(".__init__"), path


def test_every_module_is_in_a_layer():
  unknown = {m for m, _ in _modules() if m != "densesynth_jax" and _group(m) not in RANK}
  assert not unknown, f"modules outside every layer (add them to RANK and ARCHITECTURE.md): {unknown}"


def test_no_back_edges():
  bad = []
  for module, path in _modules():
    if module == "densesynth_jax":
      continue
    mine = _group(module)
    for name, line, _, _ in _imports(path):
      if name.startswith("configs"):
        bad.append(f"{path.name}:{line} imports {name} (configs sit above the package)")
      if not name.startswith("densesynth_jax.") or name.count(".") < 1:
        continue
      theirs = _group(name)
      if theirs not in RANK or theirs == mine:
        continue
      if RANK[theirs] >= RANK[mine]:
        bad.append(f"{module}:{line} ({mine}, layer {RANK[mine]}) imports {name} "
                   f"({theirs}, layer {RANK[theirs]})")
  assert not bad, "imports against the layers:\n" + "\n".join(sorted(set(bad)))


def test_imports_inside_functions_are_third_party_with_a_reason():
  bad = []
  for module, path in _modules():
    for name, line, inside, text in _imports(path):
      if not inside:
        continue
      if name.startswith("densesynth_jax") or name.startswith("configs"):
        bad.append(f"{module}:{line} imports the package's own {name} inside a function")
      elif "#" not in text:
        bad.append(f"{module}:{line} imports {name} inside a function without a reason")
  assert not bad, "\n".join(sorted(set(bad)))


def test_the_check_sees_a_back_edge(tmp_path):
  """The walker itself: a synthetic back-edge and an unexplained nested import are found."""
  f = tmp_path / "m.py"
  f.write_text("from densesynth_jax.experiments import runner\n\n"
               "def g():\n  import sklearn\n")
  found = list(_imports(f))
  assert ("densesynth_jax.experiments", 1, False, found[0][3]) in found
  assert any(n == "sklearn" and inside and "#" not in text for n, _, inside, text in found)
