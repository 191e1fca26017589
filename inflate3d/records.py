"""Plain records for the classes on ``inspect``'s path: a dataclass's repr and field equality,
without its cost when the class is created.

``@dataclass`` compiles ``__init__``, ``__repr__`` and ``__eq__`` (and, frozen, ``__setattr__``,
``__delattr__`` and ``__hash__``) from source text as the module is imported: 0.3 to 0.9 ms a
class, 5 ms for the nine that ``inspect`` imports, half of what its work may cost above the
CLI's start-up. A record writes its own ``__init__`` and names its fields in ``__slots__``.
"""
from __future__ import annotations


def _fields(cls) -> tuple[str, ...]:
    """Every ``__slots__`` name along the class's bases, base first (a subclass adds fields); a
    name with a leading underscore is a cache, not a field."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        names += [s for s in ([slots] if isinstance(slots, str) else slots) if s not in names and not s.startswith("_")]
    return tuple(names)


class Record:
    """Fields in ``__slots__``; repr and equality by field, in order; unhashable, as a mutable
    dataclass is."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in _fields(type(self)))

    def replace(self, **changes):
        """A copy with ``changes`` (what ``dataclasses.replace`` does): ``__init__`` takes the fields."""
        values = dict(zip(_fields(type(self)), self._values()))
        values.update(changes)
        return type(self)(**values)

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={getattr(self, name)!r}" for name in _fields(type(self)))
        return f"{type(self).__name__}({body})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]


class FrozenRecord(Record):
    """A record that cannot change once built (``__init__`` sets its fields through ``_set``),
    hashed by its fields as a frozen dataclass is."""

    __slots__ = ()

    def _set(self, **fields) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot delete {name!r}")

    def __hash__(self) -> int:
        return hash(self._values())
