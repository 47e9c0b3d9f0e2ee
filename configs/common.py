"""Helpers shared by the config files.

`parse_arg` turns the text after the colon in `--config=configs/demo.py:smoke,seeds=3` into a
ConfigDict, so a config file can offer named variants (`smoke`) and typed knobs. `small_model` is
the paper's generator architecture scaled down, used by the generator and experiment configs.

Locking: config builders and `get_config` return UNLOCKED ConfigDicts, so a config file can
extend or replace the blocks it builds on. The entry points lock the parsed config
(`densesynth_jax/cli.py`, `lock_config=True`): there, `--config.x=...` may change a field but
not add one.
"""

from __future__ import annotations

import ml_collections

from densesynth_jax.models import cvae


def parse_arg(arg: str | None, lazy: bool = False, **spec) -> ml_collections.ConfigDict:
  """Parses `"a,b=2,c=x"` against defaults given as keyword arguments.

  A bare name (`smoke`) sets a bool field to True. Values are cast to the type of the default.
  Unknown names raise ValueError listing the valid ones, unless `lazy` is True (then they are
  kept as strings).

  Example: `parse_arg("smoke,seeds=3", smoke=False, seeds=1)` gives `smoke=True, seeds=3`.
  """
  cfg = ml_collections.ConfigDict(spec)
  if not arg:
    return cfg
  for item in arg.split(","):
    item = item.strip()
    if not item:
      continue
    name, eq, value = item.partition("=")
    if name not in spec:
      if not lazy:
        raise ValueError(f"unknown config argument {name!r}; valid: {sorted(spec)}")
      cfg[name] = value if eq else True
      continue
    default = spec[name]
    if not eq:
      if not isinstance(default, bool):
        raise ValueError(f"config argument {name!r} needs a value ({name}=...)")
      cfg[name] = True
    elif isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config argument {name}={value!r} is not a bool")
      cfg[name] = value.lower() in ("true", "1")
    elif isinstance(default, int):
      cfg[name] = int(value)
    elif isinstance(default, float):
      cfg[name] = float(value)
    else:
      cfg[name] = value
  return cfg


def small_model(image_size: int, z_dim: int, width: int) -> ml_collections.ConfigDict:
  """The paper's architecture with every width scaled to `width` (64 = the paper's finest)."""
  m = cvae.default_config()
  m.image_size = image_size  # model side; the domain's images are resized to it
  m.z_dim = z_dim  # latent size
  m.enc_widths = (width, 2 * width, 2 * width)  # paper: (64, 128, 256)
  m.enc_top = 2 * width  # paper: 256
  m.enc_fc = 8 * width  # paper: 1024
  m.y_enc = 4 * width  # paper: 256
  m.y_dec = 4 * width  # paper: 512
  m.dec_fc = 4 * width  # paper: 256
  m.dec_base = 2 * width  # paper: 256
  m.dec_widths = (2 * width, 2 * width, width)  # paper: (256, 128, 64)
  return m
