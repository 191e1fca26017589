"""The exceptions inflate3d raises for bad input and failed checks.

Every one is an ``Inflate3dError`` (the CLI turns it into a one-line message and an exit code,
never a traceback; ``--debug`` shows it). The subclasses are also the builtin a Python user would
catch: ``except FileNotFoundError`` or ``except KeyError`` works on inflate3d's errors too.
Messages say what is wrong and what to do, in library terms (no CLI flags): the CLI adds its own.
"""
from __future__ import annotations

BAD_INPUT = 2
CHECK_FAILED = 1


class Inflate3dError(Exception):
    """A problem the user can act on: the message names the file and says what to do."""

    def __init__(self, message: str, *, exit_code: int = BAD_INPUT, details: dict | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.details = details or {}  # structured facts for --json (e.g. the failed checks)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(Inflate3dError, ValueError):
    """A value that cannot be used: a bad setting, a malformed file, a tolerance below zero."""


class UnknownNameError(Inflate3dError, KeyError):
    """A name that is not registered: an architecture, a naming scheme, a setting."""


class SourceNotFoundError(Inflate3dError, FileNotFoundError):
    """A file (or cached download) that is not there."""

    def __init__(self, message: str, *, exit_code: int = BAD_INPUT, details: dict | None = None) -> None:
        Inflate3dError.__init__(self, message, exit_code=exit_code, details=details)


class CheckFailedError(Inflate3dError):
    """A proof that did not hold (verification, round trip, sha256 of the source)."""

    def __init__(self, message: str, *, exit_code: int = CHECK_FAILED, details: dict | None = None) -> None:
        super().__init__(message, exit_code=exit_code, details=details)
