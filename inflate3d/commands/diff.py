"""``inflate3d diff``: exit 0 when equal within tolerance, 1 when they differ, 2 on bad input."""
from __future__ import annotations

from ..console import Console
from ..errors import CHECK_FAILED, Inflate3dError


def run(console: Console, a: str, b: str, atol: float, rtol: float, top: int, keys: str | None,
        inflated: bool, trust_pickle: bool) -> int:
    import re

    from . import early

    early.checkpoint_file(a)
    early.checkpoint_file(b)
    if atol < 0 or rtol < 0:
        raise Inflate3dError(f"--atol/--rtol must be >= 0 (got {atol:g}, {rtol:g})")
    if keys is not None:
        try:
            re.compile(keys)
        except re.error as e:
            raise Inflate3dError(f"--keys {keys!r}: not a regular expression ({e})") from None
    from ..torch_import import import_torch

    import_torch()  # after the torch-free checks
    from ..io.lazy import TensorFile

    # Each file is opened once, here, and handed on: a second open would read its header again,
    # and a whole .pth again.
    fa = TensorFile(a, trust_pickle=trust_pickle)
    if inflated:
        from .. import families

        if (hit := families.for_keys(fa.keys())) is not None:  # another family's diff: A read through, B as it needs
            with fa:
                return _inflated(console, families.hook(hit[0], "diff_inflated", "diff --inflated")(
                    fa, b, keys=keys, trust_pickle=trust_pickle), a, b)
    with fa, TensorFile(b, trust_pickle=trust_pickle) as fb:
        if inflated:
            from ..diff import diff_inflated

            return _inflated(console, diff_inflated(fa, fb, keys=keys), a, b)
        return _plain(console, fa, fb, atol, rtol, top, keys)


def _plain(console: Console, fa, fb, atol: float, rtol: float, top: int, keys: str | None) -> int:
    from ..diff import diff_checkpoints
    from ..diff.checkpoints import two_d_of

    a, b = fa.origin, fb.origin
    flat = [f.origin for f in (fa, fb) if two_d_of(f)]
    if len(flat) == 1:
        three = b if flat[0] == a else a
        raise Inflate3dError(f"{flat[0]} is a 2D ResNet and {three} a 3D checkpoint; did you mean "
                             f"`inflate3d diff --inflated {three} {flat[0]}` (is it its inflation)?")
    r = diff_checkpoints(fa, fb, atol=atol, rtol=rtol, keys=keys)
    values = sum(d.numel for d in r.diffs)
    console.emit_json({
        "ok": r.equal, "inputs": {"a": a, "b": b},
        "equal": r.equal, "schemes": {"a": r.schemes[0], "b": r.schemes[1]}, "atol": atol, "rtol": rtol,
        "only_a": r.only_a, "only_b": r.only_b,
        "shape_mismatch": [{"key": k, "a": list(sa), "b": list(sb)} for k, sa, sb in r.shape_mismatch],
        "dtype_mismatch": [{"key": k, "a": da, "b": db} for k, da, db in r.dtype_mismatch],
        "compared": len(r.diffs), "values_compared": values, "differing": len(r.differing),
        "worst": [_tensor_json(d) for d in r.worst(top)],
        "groups": {_key(g): vars(v) for g, v in r.groups.items()}, "notes": r.notes})
    for note in r.notes:
        console.note(f"note: {note}")
    names = f"{r.schemes[0]} vs {r.schemes[1]}" if r.schemes[0] != r.schemes[1] else r.schemes[0]
    console.table(f"Summary ({names}, atol {atol:g}, rtol {rtol:g})", ["", ""], [
        ["tensors compared", f"{len(r.diffs):,} ({values:,} values)"], ["differing", len(r.differing)],
        ["only in A", len(r.only_a)], ["only in B", len(r.only_b)],
        ["shape mismatches", len(r.shape_mismatch)], ["dtype mismatches", len(r.dtype_mismatch)]])
    listing = [[k, "only in A", "", ""] for k in r.only_a[:top]] + [[k, "only in B", "", ""] for k in r.only_b[:top]]
    listing += [[k, "shape", "x".join(map(str, sa)), "x".join(map(str, sb))] for k, sa, sb in r.shape_mismatch[:top]]
    listing += [[k, "dtype", da, db] for k, da, db in r.dtype_mismatch[:top]]
    if listing:
        console.table("Keys that do not line up", ["key", "problem", "A", "B"], listing)
    console.table(f"Worst {min(top, len(r.diffs))} tensors", ["key", "max abs", "max rel", "cosine", "equal"],
                  [[d.key, f"{d.max_abs:.3e}", f"{d.max_rel:.3e}", f"{d.cosine:.6f}", "yes" if d.equal else "NO"]
                   for d in r.worst(top)], justify=["left", "right", "right", "right", "left"])
    console.table("By module", ["module", "tensors", "differing", "max abs", "max rel"],
                  [[g, v.tensors, v.differing, f"{v.max_abs:.3e}", f"{v.max_rel:.3e}"] for g, v in r.groups.items()],
                  justify=["left", "right", "right", "right", "right"])
    console.info("[green]equal[/]" if r.equal else "[bold red]differ[/]")
    return 0 if r.equal else CHECK_FAILED


def _key(name: str) -> str:
    """A JSON key without spaces ('slow layer4' -> 'slow_layer4')."""
    return name.replace(" ", "_")


def _tensor_json(d) -> dict:
    return {"key": d.key, "numel": d.numel, "max_abs": d.max_abs, "max_rel": d.max_rel,
            "cosine": d.cosine, "equal": d.equal}


def _inflated(console: Console, r, a: str, b: str) -> int:
    r.three_d, r.two_d = getattr(r, "three_d", "") or a, getattr(r, "two_d", "") or b  # a family's: in order
    console.emit_json({
        "ok": r.exact, "inputs": {"three_d": r.three_d, "two_d": r.two_d},
        "exact": r.exact, "arch": r.arch, "no_2d_source": r.no_source, "unused_2d": r.unused_2d,
        "stages": {_key(g): {"tensors": s.tensors, "exact": s.exact, "max_rel_change": s.max_rel_change,
                       "methods": sorted(s.methods), "padding_moved": s.padding_moved} for g, s in r.stages.items()},
        "tensors": [vars(t) for t in r.tensors], "notes": r.notes})
    rows = []
    for g, s in r.stages.items():
        state = "exact inflation" if s.exact == s.tensors else f"moved: max relative change {s.max_rel_change:.2e}"
        rows.append([g, s.tensors, s.exact, ", ".join(sorted(s.methods)), state +
                     (f"; lateral padding moved in {s.padding_moved}" if s.padding_moved else "")])
    for note in r.notes:
        console.note(f"note: {note}")
    console.table(f"{r.three_d} against its 2D source {r.two_d} (architecture {r.arch})",
                  ["module", "tensors", "exact", "methods", "state"], rows,
                  justify=["left", "right", "right", "left", "left"])
    if r.no_source:
        console.note(f"no 2D source ({len(r.no_source)} tensors: fast pathway, laterals or a new head), "
                     f"e.g. {', '.join(r.no_source[:3])}")
    if r.unused_2d:
        console.note(f"2D tensors without a 3D counterpart: {', '.join(r.unused_2d)}")
    console.info("[green]exactly the inflation of its 2D source[/]" if r.exact else
                 "[yellow]moved from its inflation[/] (see the state column)")
    return 0 if r.exact else CHECK_FAILED
