"""``--set KEY=VALUE``: the one parser lives in the torch-free ``inflate3d.settings`` (the command
line checks a setting before importing torch); re-exported here for the inflation code."""
from __future__ import annotations

from ..settings import (as_tuples, flatten_settings, format_settings, merge_settings, parse_settings, parse_value,
                        read_recorded_settings)

__all__ = ["as_tuples", "flatten_settings", "format_settings", "merge_settings", "parse_settings", "parse_value",
           "read_recorded_settings"]
