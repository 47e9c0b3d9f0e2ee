"""Where real data lives: `DENSESYNTH_DATA_DIR` (or a config's `data_dir`), never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "DENSESYNTH_DATA_DIR"


def data_dir(override: str | os.PathLike | None = None) -> Path:
  """The real-data folder: `override` if given, else $DENSESYNTH_DATA_DIR.

  Raises FileNotFoundError with what to set when neither names an existing folder.
  """
  value = str(override) if override else os.environ.get(ENV_VAR, "")
  if not value:
    raise FileNotFoundError(
        f"no real-data folder: set {ENV_VAR}=/path/to/data (or the config's data_dir) to the "
        f"folder holding celeba/, jaffe/, ut-zap50k-shoes/, ... (see README, 'Real data')")
  path = Path(value).expanduser()
  if not path.is_dir():
    raise FileNotFoundError(f"real-data folder {path} does not exist ({ENV_VAR} / data_dir)")
  return path


def require_file(path: str | os.PathLike, what: str = "") -> Path:
  """Returns `path` if it is a file, else raises a one-line FileNotFoundError naming it."""
  path = Path(path)
  if not path.is_file():
    hint = f" ({what})" if what else ""
    raise FileNotFoundError(f"missing file: {path}{hint}")
  return path
