"""Shared fixtures. Real-data tests are marked `real_data` and skip without DENSESYNTH_DATA_DIR."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
  value = os.environ.get("DENSESYNTH_DATA_DIR", "")
  if not value or not Path(value).is_dir():
    pytest.skip("real data not available (set DENSESYNTH_DATA_DIR to ../shared/data)")
  return Path(value)
