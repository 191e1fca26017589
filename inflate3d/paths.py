"""Checks on input and output paths that need no torch, so the command line can refuse a missing
file or an existing output in milliseconds, before any heavy import."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import InvalidInputError, SourceNotFoundError


def check_readable(path: Path) -> None:
    """A file that exists, is not a folder, and can be read."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise InvalidInputError(f"{path}: is a directory; point to a checkpoint file")
    if not path.is_file():  # a named pipe blocked the first open for ever (inspect of a folder holding one)
        raise InvalidInputError(f"{path}: is not a regular file (a pipe, socket or device); point to a checkpoint file")
    if not os.access(path, os.R_OK):
        raise InvalidInputError(f"{path}: permission denied; make the file readable")


def check_output(path: Path, *, force: bool, inputs: Sequence[Path] = ()) -> None:
    """An output name that may be written: not a folder, not one of the inputs, not an existing
    file unless ``force``, and inside a folder that exists or can be created (``make_parent``)."""
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{path}: is a directory; give a file name inside it, e.g. "
                                f"{path / 'model.safetensors'}")
    for src in inputs:
        if src.exists() and path.exists() and os.path.samefile(src, path):
            raise InvalidInputError(f"{path}: is also an input; choose another output path")
    if path.exists() and not force:
        raise InvalidInputError(f"{path}: already exists; pass --force to overwrite it")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InvalidInputError(f"{path}: {ancestor} is a file, not a folder; choose another output path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{path}: the folder {ancestor} is not writable; choose another output path")


def make_parent(path: Path) -> list[Path]:
    """Create the output's missing folders (like ``mkdir -p``); return those created, deepest
    first, so that a failed write can remove them again (``remove_made``)."""
    made = []
    folder = Path(path).parent
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return made


def remove_made(made: Sequence[Path]) -> None:
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (someone else wrote there) or gone: leave it


# What an output's extension says it is; ``--format`` may only agree (or name the format of a file
# whose extension says nothing).
FORMAT_BY_SUFFIX = {".safetensors": "safetensors", ".pth": "pth", ".pt": "pth", ".pyth": "pth", ".pkl": "pkl"}
FORMAT_CHOICES = ".safetensors, .pth/.pt/.pyth (torch) or .pkl (Caffe2 blobs)"


def output_format(path: Path, fmt: str | None) -> str:
    """The format to write ``path`` in: its extension's, which ``fmt`` (``--format``) must not
    contradict; an unknown extension needs ``fmt``."""
    if Path(path).is_dir():
        raise InvalidInputError(f"{path}: is a directory; give a file name inside it, e.g. "
                                f"{Path(path) / 'model.safetensors'}")
    suffix = Path(path).suffix.lower()
    by_suffix = FORMAT_BY_SUFFIX.get(suffix)
    if by_suffix and fmt and fmt != by_suffix:
        raise InvalidInputError(f"{path}: a {suffix} file is written as {by_suffix}, but --format {fmt} was "
                             f"given; change the extension or drop --format")
    if by_suffix is None and fmt is None:
        raise InvalidInputError(f"{path}: unknown extension {suffix or '(none)'!r}; use {FORMAT_CHOICES}, "
                             "or pass --format")
    return by_suffix or fmt
