"""What both entry scripts share: flags, the default workdir, config.json, one-line errors.

An entry script defines `--config` / `--workdir` through `define_flags()` and hands its library
function to `run()`. Bad input (a missing or corrupt file, a wrong index, an unknown config key, a
config override of the wrong type, a non-finite loss) ends the process with one line on stderr
naming the cause and a non-zero exit; set DENSESYNTH_DEBUG=1 to see the full traceback instead.

The parsed config is locked here (`lock_config=True`), the one place that locks: config files
return unlocked ConfigDicts, and `--config.x=...` may change a field but not add one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

import ml_collections
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from densesynth_jax import distributed, io
from densesynth_jax.errors import one_line

# The error types that mean "bad input or bad state", reported in one line rather than a traceback.
USER_ERRORS = (OSError, ValueError, KeyError, IndexError, AttributeError, FloatingPointError)


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


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """`get_config(arg)` of the config file `spec` (`path` or `path:arg`), as config_flags does."""
  path, *arg = spec.split(":", 1)
  module_spec = importlib.util.spec_from_file_location("_densesynth_config_file", path)
  if module_spec is None:
    raise FileNotFoundError(f"config file not found: {path}")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(*arg)


_ELEMENT_TYPES = (bool, int, float, str)


def _element_type(value) -> type | None:
  """The one type of a non-empty tuple's elements (bool, int, float or str), else None."""
  kinds = {type(v) for v in value} if isinstance(value, tuple) else set()
  return kinds.pop() if len(kinds) == 1 and kinds <= set(_ELEMENT_TYPES) else None


def _is_a(value, kind: type) -> bool:
  """`value` has type `kind` exactly (a bool is no int); an int also serves for a float."""
  return type(value) is kind or (kind is float and type(value) is int)


def _lookup(config, path: str):
  """The value at the dotted `path` of `config`, or None where there is none."""
  for key in path.split("."):
    if not isinstance(config, (ml_collections.ConfigDict, dict)) or key not in config:
      return None
    config = config[key]
  return config


def check_override_types(config_flag) -> None:
  """Checks each tuple override (`--config.seeds=...`) against the config file's own tuple.

  Why it is needed: ml_collections 1.1.0 parses a tuple override with `ast.literal_eval` and,
  when that fails, keeps the text as a one-string tuple (config_flags/tuple_parser.py), so
  `--config.seeds=abc` becomes `('abc',)`. ConfigDict's type safety then checks only that the
  field is still a tuple, not what it holds, and the bad seed surfaced inside the first cell.
  Scalar overrides need no check here: absl's parsers and ConfigDict already reject
  `--config.ranksvm.C=abc` at parse time.

  How: the config file is loaded again (its `get_config` with the same argument: cheap, no side
  effects) to get each overridden field's value BEFORE the override. Where that value is a
  non-empty tuple whose elements share one type (bool, int, float or str), every element of the
  override must have that type too (an int is accepted for a float, a bool never for an int).
  Empty or mixed tuples in the file give no type to check against. Generic on purpose: it knows
  nothing of the fields, so it serves every entry script and config file; checks of meaning
  (e.g. seeds must be non-empty) are the entry script's `check` (see `run`).

  Raises ValueError, one line naming the override, the value and the expected type.
  """
  overrides = config_flags.get_override_values(config_flag)
  tuples = {path: v for path, v in overrides.items() if isinstance(v, tuple) and v}
  if not tuples:
    return
  defaults = load_config_file(config_flags.get_config_filename(config_flag))
  for path, value in tuples.items():
    default = _lookup(defaults, path)
    kind = _element_type(default)
    if kind is not None and not all(_is_a(v, kind) for v in value):
      raise ValueError(f"bad config override --{config_flag.name}.{path}={value!r}: expected a "
                       f"tuple of {kind.__name__}, like the config file's {default!r}")


def config_name(config_path: str) -> str:
  """`configs/demo.py:smoke` -> `demo-smoke` (the default run folder name)."""
  path, _, arg = config_path.partition(":")
  stem = Path(path).name.removesuffix(".py")
  return f"{stem}-{arg.replace(',', '-').replace('=', '')}" if arg else stem


def default_workdir() -> Path:
  return Path("runs") / config_name(config_flags.get_config_filename(flags.FLAGS["config"]))




def run(library_fn: Callable[[ml_collections.ConfigDict, Path], object], config_holder,
        workdir_holder, prog: str,
        check: Callable[[ml_collections.ConfigDict], None] | None = None) -> None:
  """Calls `library_fn(config, workdir)` after writing config.json; one-line errors.

  Before anything is written, the parsed config's tuple overrides are checked against the config
  file's own types (`check_override_types`), then `check(config)` runs when given: the entry
  script's checks of its library's required fields (e.g. train_ranker.py passes
  configs/experiment.py's `check_config`), kept out of this module so that it imports nothing
  above `densesynth_jax.io`.
  """
  absl_logging.set_verbosity(absl_logging.WARNING)  # keep JAX/orbax INFO lines off the console
  try:
    config = config_holder.value
    config.to_dict()  # a config file that failed to load raises here, before any output
    check_override_types(flags.FLAGS[config_holder.name])
    if check is not None:
      check(config)
    workdir = Path(workdir_holder.value) if workdir_holder.value else default_workdir()
    distributed.initialize_from_env()  # a multi-process job when DENSESYNTH_COORDINATOR is set
    if distributed.is_main():
      io.write_config(config, workdir)
    library_fn(config, workdir)
  except USER_ERRORS as e:
    if os.environ.get("DENSESYNTH_DEBUG"):
      raise
    print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
    sys.exit(1)
