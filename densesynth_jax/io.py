"""Atomic file output and small serialisation helpers.

Every file a stage writes goes through these functions: the content is written to a temporary
file in the destination's folder and then renamed over the destination, so a crash never leaves a
half-written output behind and a reader never sees one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
  """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  os.close(fd)
  tmp = Path(tmp)
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
  """Yields a temporary folder beside `path`; it replaces `path` if the block succeeds."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
  try:
    yield tmp
    if path.exists():
      old = path.with_name(f".{path.name}.old")
      shutil.rmtree(old, ignore_errors=True)
      os.replace(path, old)
      os.replace(tmp, path)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.replace(tmp, path)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  with atomic_path(path) as tmp:
    tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
  write_bytes(path, text.encode("utf-8"))


def _to_json(x: Any) -> Any:
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, Path):
    return str(x)
  raise TypeError(f"cannot serialise {type(x).__name__} to JSON")


def dumps(obj: Any) -> str:
  return json.dumps(obj, indent=2, sort_keys=False, default=_to_json)


def write_json(path: str | os.PathLike, obj: Any) -> None:
  write_text(path, dumps(obj) + "\n")


def read_json(path: str | os.PathLike) -> Any:
  path = Path(path)
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    raise FileNotFoundError(f"missing file: {path}") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"corrupt JSON in {path}: {e}") from None


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
  """Writes an uncompressed .npz atomically."""
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
  path = Path(path)
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  except FileNotFoundError:
    raise FileNotFoundError(f"missing file: {path}") from None
  except (ValueError, OSError, EOFError) as e:
    raise ValueError(f"corrupt or unreadable .npz file {path}: {e}") from None


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
  """Saves a matplotlib figure as PNG atomically and closes it."""
  import matplotlib.pyplot as plt  # matplotlib is loaded only by code that draws figures
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
  plt.close(fig)
  write_bytes(path, buf.getvalue())


def write_config(config, workdir: str | os.PathLike) -> None:
  """`<workdir>/config.json`: an ml_collections config as sorted, indented JSON (atomically)."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  write_text(workdir / "config.json", config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
