"""Checks that need no torch, run by each command before its heavy imports: a typo in a name, a
missing input, an existing output cost milliseconds, not a torch import."""
from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError, UnknownNameError
from ..names import ARCH_NAMES, METHOD_ALIASES, METHOD_NAMES, unknown_arch_message, unknown_name_message
from ..paths import check_output, check_readable
from ..settings import parse_settings

SOURCE_PREFIXES = ("torchvision:", "seeded:")


def arch_name(name: str | None) -> str | None:
    """``name`` if it is a registered architecture; else an error that suggests the one meant."""
    if name is None or name in ARCH_NAMES:
        return name
    raise UnknownNameError(f"--arch: {unknown_arch_message(name)}")


def method_name(name: str | None) -> str | None:
    """``mean`` or ``center`` (``centre`` is accepted too)."""
    if name is None:
        return None
    name = METHOD_ALIASES.get(name.lower(), name.lower())
    if name not in METHOD_NAMES:
        raise InvalidInputError(f"--method: {unknown_name_message('method', name, METHOD_NAMES)}")
    return name


def settings(items) -> dict:
    try:
        return parse_settings(items or ())
    except InvalidInputError as e:
        raise InvalidInputError(f"--set: {e}") from None


def input_file(spec: str | None) -> Path | None:
    """The path of a file input (None for torchvision:/seeded: sources), checked readable; a
    Hugging Face folder counts as one (``checkpoint_file``)."""
    if spec is None or spec.startswith(SOURCE_PREFIXES):
        return None
    return checkpoint_file(spec)


def output_file(output: str | None, *, force: bool, inputs=()) -> Path | None:
    if output is None:
        return None
    check_output(Path(output), force=force, inputs=[p for p in inputs if p is not None])
    return Path(output)


def checkpoint_file(spec: str) -> Path:
    """A checkpoint to read (convert, verify, inspect, diff), checked readable; a Hugging Face
    folder (config.json + model.safetensors) counts as one."""
    path = Path(spec)
    if path.is_dir() and (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        check_readable(path / "model.safetensors")
        return path
    check_readable(path)
    return path
