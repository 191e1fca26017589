"""The one exception type inflate3d raises for bad input and failed checks.

The CLI turns it into a one-line message and an exit code, never a traceback (``--debug`` shows it).
"""
from __future__ import annotations

BAD_INPUT = 2
CHECK_FAILED = 1


class Inflate3dError(Exception):
    """A problem the user can act on: the message names the file and says what to do."""

    def __init__(self, message: str, *, exit_code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code
