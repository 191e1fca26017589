"""Key tables that run both ways: ordered rows of (scheme template, native template).

A template is a key with typed placeholders whose canonical value is shared by both sides:

- ``{L}`` / ``{L+1}``: an integer, written with an offset (PySlowFast's ``s{L+1}`` is native ``layer{L}``)
- ``{p=slow_path|fast_path}``: an enumeration, written as the p-th choice (``{p=|t_}`` allows empty)
- ``{t*}``: an identifier passed through (``weight``, ``running_mean``, ...); ``{k**}`` any text
- ``{last@L}``: the last block index of stage L, computed from the architecture when writing

A side of ``None`` means the key is dropped in that direction, on purpose (never silently: the
converter reports it). The first matching row wins; a key that no row matches is an error.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ...records import FrozenRecord, Record

_PLACEHOLDER = re.compile(r"\{(\w+)(?:([+-]\d+)|=([^}]*)|@(\w+)|(\*\*?))?\}")


class _Field(FrozenRecord):
    __slots__ = ("name", "offset", "choices", "last_of", "ident")
    name: str
    offset: int
    choices: tuple[str, ...] | None
    last_of: str | None
    ident: bool

    def __init__(self, name: str, offset: int = 0, choices: tuple[str, ...] | None = None,
                 last_of: str | None = None, ident: bool = False) -> None:
        self._set(name=name, offset=offset, choices=choices, last_of=last_of, ident=ident)


class Template:
    """Parsed and compiled on first use: a process that reads one scheme's names pays for that
    scheme's rows only (``inspect`` starts in a tenth of a second)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._fields: list[_Field] | None = None
        self._regex: re.Pattern | None = None
        self._literals: list[str] = []  # the text around the fields: one more than the fields

    def _parse(self) -> None:
        text = self.text
        fields: list[_Field] = []
        pattern, pos = "", 0
        for m in _PLACEHOLDER.finditer(text):
            self._literals.append(text[pos:m.start()])
            pattern += re.escape(text[pos:m.start()])
            name, offset, choices, last_of, star = m.groups()
            if choices is not None:
                f = _Field(name, choices=tuple(choices.split("|")))
                pattern += f"(?P<{name}>{'|'.join(re.escape(c) for c in f.choices)})"
            elif last_of is not None:
                f = _Field(name, last_of=last_of)
                pattern += f"(?P<{name}>\\d+)"
            elif star:
                f = _Field(name, ident=True)
                pattern += f"(?P<{name}>" + (".+" if star == "**" else r"\w+") + ")"
            else:
                f = _Field(name, offset=int(offset or 0))
                pattern += f"(?P<{name}>\\d+)"
            fields.append(f)
            pos = m.end()
        self._literals.append(text[pos:])
        self._regex = re.compile(pattern + re.escape(text[pos:]) + r"\Z")  # its groups: the fields, in order
        self._fields = fields

    @property
    def fields(self) -> list[_Field]:
        if self._fields is None:
            self._parse()
        return self._fields  # type: ignore[return-value]

    @property
    def regex(self) -> re.Pattern:
        if self._regex is None:
            self._parse()
        return self._regex  # type: ignore[return-value]

    def match(self, key: str) -> dict[str, object] | None:
        m = self.regex.match(key)
        if m is None:
            return None
        values: dict[str, object] = {}
        for f, text in zip(self.fields, m.groups()):
            if f.last_of:
                continue  # derived; checked by the caller's strict load
            if f.choices is not None:
                values[f.name] = f.choices.index(text)
            elif f.ident:
                values[f.name] = text
            else:
                values[f.name] = int(text) - f.offset
        return values

    def format(self, values: Mapping[str, object], last_block: Mapping[int, int]) -> str:
        fields = self.fields  # parsed on first use, with the literals
        out = [self._literals[0]]
        for f, after in zip(fields, self._literals[1:]):
            if f.last_of:
                stage = int(values[f.last_of])  # type: ignore[arg-type]
                if stage not in last_block:
                    raise KeyError(f"no block count known for stage {stage}")
                out.append(str(last_block[stage]))
            elif f.choices is not None:
                out.append(f.choices[int(values[f.name])])  # type: ignore[arg-type]
            elif f.ident:
                out.append(str(values[f.name]))
            else:
                out.append(str(int(values[f.name]) + f.offset))  # type: ignore[arg-type]
            out.append(after)
        return "".join(out)


DROP = None


class Rule(FrozenRecord):
    __slots__ = ("scheme", "native", "_keeps")
    scheme: Template | None
    native: Template | None

    def __init__(self, scheme: Template | None, native: Template | None) -> None:
        self._set(scheme=scheme, native=native, _keeps=None)

    @property
    def keeps_names(self) -> bool:
        """Both sides one text whose fields pass their text through (``{k**}``, choices): each key
        maps to itself (mmaction2's rows). Numbered fields are not: they write ``01`` as ``1``."""
        if self._keeps is None:
            same = self.scheme is not None and self.native is not None and self.scheme.text == self.native.text \
                and all(f.ident or f.choices is not None for f in self.scheme.fields)
            object.__setattr__(self, "_keeps", same)
        return self._keeps  # type: ignore[return-value]


class KeyTable(Record):
    """An ordered list of rules between one naming scheme and the native (mmaction2) names."""

    __slots__ = ("name", "rules")

    def __init__(self, name: str, rules: list[Rule] | None = None) -> None:
        self.name = name
        self.rules = [] if rules is None else rules

    @classmethod
    def of(cls, name: str, rows: Sequence[tuple[str | None, str | None]]) -> "KeyTable":
        return cls(name, [Rule(Template(s) if s else None, Template(n) if n else None) for s, n in rows])

    def to_native(self, key: str, last_block: Mapping[int, int] = {}) -> tuple[bool, str | None]:
        """(matched, native key or None for a deliberate drop)."""
        return self._map(key, "scheme", "native", last_block)

    def from_native(self, key: str, last_block: Mapping[int, int] = {}) -> tuple[bool, str | None]:
        return self._map(key, "native", "scheme", last_block)

    def _map(self, key: str, src: str, dst: str, last_block) -> tuple[bool, str | None]:
        for rule in self.rules:
            tmpl = getattr(rule, src)
            if tmpl is None:
                continue
            if rule.keeps_names:  # the key is its own image: no values to take apart and put back
                if tmpl.regex.match(key):
                    return True, key
                continue
            values = tmpl.match(key)
            if values is not None:
                out = getattr(rule, dst)
                return True, (None if out is None else out.format(values, last_block))
        return False, None

    def rows(self) -> list[tuple[str, str]]:
        return [(r.scheme.text if r.scheme else "(dropped)", r.native.text if r.native else "(dropped)")
                for r in self.rules]
