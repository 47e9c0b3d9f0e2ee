"""One-line error messages, shared by every command-line entry (cli, predict)."""

from __future__ import annotations


def one_line(e: BaseException) -> str:
  """The root cause of an exception chain, on one line (config_flags wraps load errors)."""
  while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
    e = e.__cause__ or e.__context__
  msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
  first = str(msg).strip().splitlines()[0] if str(msg).strip() else ""
  return f"{type(e).__name__}: {first}"
