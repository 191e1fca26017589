"""X3D fixtures: the mmaction2 and PySlowFast reference key lists."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="session")
def x3d_reference() -> dict:
    """mmaction2 and PySlowFast X3D key lists: {'mmaction2'|'pyslowfast': {config: [[key, shape], ...]}}."""
    raw = json.loads((DATA / "x3d_state_dicts.json").read_text())
    return {side: {name: {**entry, "state_dict": raw["state_dicts"][entry["state_dict"]]}
                   for name, entry in raw[side].items()} for side in ("mmaction2", "pyslowfast")}
