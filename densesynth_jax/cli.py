"""What both entry scripts share: flags, the default workdir, config.json, one-line errors.

An entry script defines `--config` / `--workdir` through `define_flags()` and hands its library
function to `run()`. Bad input (a missing or corrupt file, a wrong index, an unknown config key, a
non-finite loss) ends the process with one line on stderr naming the cause and a non-zero exit;
set DENSESYNTH_DEBUG=1 to see the full traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import ml_collections
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from densesynth_jax import io

# The error types that mean "bad input or bad state", reported in one line rather than a traceback.
USER_ERRORS = (OSError, ValueError, KeyError, IndexError, AttributeError, FloatingPointError)


def one_line(e: BaseException) -> str:
  """The root cause of an exception chain, on one line (config_flags wraps load errors)."""
  while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
    e = e.__cause__ or e.__context__
  msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
  first = str(msg).strip().splitlines()[0] if str(msg).strip() else ""
  return f"{type(e).__name__}: {first}"


def define_flags():
  config = config_flags.DEFINE_config_file(
      "config", None, "Config file, e.g. configs/demo.py or configs/demo.py:smoke. Override "
      "fields with --config.a.b=value.", lock_config=True)
  flags.mark_flags_as_required(["config"])
  workdir = flags.DEFINE_string("workdir", None, "Run folder (default: runs/<config name>). A "
                                "rerun with the same workdir resumes.")
  return config, workdir


def flags_parser(prog: str):
  """An absl `flags_parser` that turns a bad `--config.x=...` override into a one-line error."""

  def parse(argv):
    for arg in argv[1:]:
      if arg.startswith("--config="):
        path = arg.split("=", 1)[1].split(":", 1)[0]
        if not Path(path).is_file():
          print(f"{prog}: error: FileNotFoundError: config file not found: {path}", file=sys.stderr)
          sys.exit(1)
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      # absl's message is one line, unless a config's get_config raised: then keep the last
      # line of the traceback it quotes (the root cause).
      lines = [l for l in str(e).splitlines() if l.strip()]
      msg = lines[-1] if any("Traceback" in l for l in lines) else " ".join(lines)
      print(f"{prog}: error: {msg}", file=sys.stderr)
      sys.exit(1)
    except (AttributeError, KeyError, ValueError, TypeError, OSError) as e:
      key = str(e.args[0] if e.args else e).strip("'\"")
      culprits = [a for a in argv if a.startswith("--config.") and key in a.split("=")[0]]
      msg = (f"{type(e).__name__}: bad config override {culprits[0]}: unknown key {key!r}"
             if culprits else one_line(e))
      print(f"{prog}: error: {msg}", file=sys.stderr)
      sys.exit(1)
  return parse


def config_name(config_path: str) -> str:
  """`configs/demo.py:smoke` -> `demo-smoke` (the default run folder name)."""
  path, _, arg = config_path.partition(":")
  stem = Path(path).name.removesuffix(".py")
  return f"{stem}-{arg.replace(',', '-').replace('=', '')}" if arg else stem


def default_workdir() -> Path:
  return Path("runs") / config_name(config_flags.get_config_filename(flags.FLAGS["config"]))


def write_config(config: ml_collections.ConfigDict, workdir: Path) -> None:
  text = config.to_json_best_effort(indent=2, sort_keys=True) + "\n"
  workdir.mkdir(parents=True, exist_ok=True)
  io.write_text(workdir / "config.json", text)


def run(library_fn: Callable[[ml_collections.ConfigDict, Path], object], config_holder,
        workdir_holder, prog: str) -> None:
  """Calls `library_fn(config, workdir)` after writing config.json; one-line errors."""
  absl_logging.set_verbosity(absl_logging.WARNING)  # keep JAX/orbax INFO lines off the console
  try:
    config = config_holder.value
    config.to_dict()  # a config file that failed to load raises here, before any output
    workdir = Path(workdir_holder.value) if workdir_holder.value else default_workdir()
    write_config(config, workdir)
    library_fn(config, workdir)
  except USER_ERRORS as e:
    if os.environ.get("DENSESYNTH_DEBUG"):
      raise
    print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
    sys.exit(1)
