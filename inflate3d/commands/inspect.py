"""``inflate3d inspect``: what checkpoints are: format, container, scheme, tensors, metadata, and
the architecture their keys and shapes imply.

One checkpoint gets the whole description; several (or a folder, walked for checkpoint files) get
one row each. Only the structure is read (headers, the pickled structure of a torch zip), without
torch, unless ``--values`` asks for the tensors (a NaN/Inf screen) or a file can only be read by
torch's loader. Many files are spread over worker processes.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..console import Console, human_bytes
from ..errors import Inflate3dError

# what a folder walk takes for a checkpoint: the extensions the loaders read
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".pyth", ".pkl", ".ckpt", ".bin")
PARALLEL_FROM = 4  # fewer files than this are described in this process (a worker costs ~30 ms)


def _pattern(flags) -> str:
    return "(" + ", ".join("".join(str(f) for f in stage) for stage in flags) + ")"


def _is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def gather(paths: tuple[str, ...]) -> tuple[list[Path], bool]:
    """(checkpoints, walked): files as given; Hugging Face folders as one checkpoint; other folders
    walked (sorted, hidden names and symlinked folders skipped) for files with a checkpoint
    extension. ``walked`` is True when a folder was walked (the listing view, even for one file)."""
    from . import early

    found: list[Path] = []
    walked = False
    for spec in paths:
        path = Path(spec)
        if path.is_dir() and not _is_hf_folder(path):
            walked, before = True, len(found)
            for root, dirs, files in os.walk(path):
                root_path = Path(root)
                hf = sorted(d for d in dirs if not d.startswith(".") and _is_hf_folder(root_path / d))
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in hf)
                found += [root_path / d for d in hf]
                found += [root_path / f for f in sorted(files)
                          if not f.startswith(".") and f.endswith(CHECKPOINT_SUFFIXES)]
            if len(found) == before:
                raise Inflate3dError(f"{spec}: is a directory with no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)}) "
                                     "in it; point to checkpoint files or folders holding them")
        else:
            found.append(early.checkpoint_file(spec))
    return found, walked


def run(console: Console, checkpoint: tuple[str, ...], source_scheme: str | None, trust_pickle: bool,
        settings: tuple[str, ...] = (), values: bool = False, jobs: int | None = None) -> int:
    from . import early

    user_settings = early.settings(settings)
    files, walked = gather(checkpoint)
    if values:  # every tensor is loaded: torch, imported as the other commands import it
        from ..torch_import import import_torch

        import_torch()
    if len(files) == 1 and not walked:
        return _one(console, str(files[0]), source_scheme, trust_pickle, user_settings, values)
    return _many(console, files, source_scheme, trust_pickle, user_settings, values, jobs)


def _describe(spec: str, source_scheme, trust_pickle, settings, values) -> dict:
    from ..inflate.describe import describe_checkpoint
    from ..torch_import import collector_paused

    # The collector is paused while one checkpoint is read and described: it walked the records
    # being built (a first inspect in a process: 13.3 -> 13.0 ms for SlowFast-R50's safetensors,
    # 27.9 -> 26.5 ms for I3D-R152's .pth), for nothing. What is left alive is then frozen, or the
    # first allocation after the pause walks it all (0.6 ms); reference counting still frees it,
    # and what a file can make into a cycle is bounded by the file.
    try:
        with collector_paused(freeze=True):
            return describe_checkpoint(spec, source_scheme=source_scheme, trust_pickle=trust_pickle,
                                       settings=settings, values=values)
    except Inflate3dError as e:
        raise type(e)(str(e).replace(": given as ", ": --from ") + "; leave --from out or fix it"
                      if ": given as " in str(e) else str(e), exit_code=e.exit_code) from None


# --- many checkpoints: one row each --------------------------------------------------------------

def _row_for(args) -> dict:
    """One checkpoint's summary, or its error: what a worker returns (plain data)."""
    import warnings

    spec, source_scheme, trust_pickle, settings, values = args
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            r = _describe(spec, source_scheme, trust_pickle, settings, values)
        except Inflate3dError as e:
            return {"input": spec, "error": str(e), "exit_code": e.exit_code}
        except (OSError, MemoryError) as e:
            from ..cli import _one_line

            message, code = _one_line(e)
            return {"input": spec, "error": message, "exit_code": code}
    r["warnings"] = [str(w.message) for w in caught]
    return r


def _worker_init() -> None:
    """Workers leave interrupts to the parent, which stops them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _describe_all(tasks: list, jobs: int | None) -> list[dict]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(jobs or cores, len(tasks))
    if workers <= 1 or len(tasks) < PARALLEL_FROM:
        return [_row_for(t) for t in tasks]
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    pool = ctx.Pool(workers, initializer=_worker_init)
    try:
        rows = pool.map(_row_for, tasks, chunksize=max(1, len(tasks) // (workers * 4)))
        pool.close()
        return rows
    finally:
        pool.terminate()
        pool.join()


def _arch_cell(r: dict) -> str:
    if r.get("two_d"):
        return f"2D {r['two_d'].split(' (')[0]}"
    a = r.get("architecture") or {}
    if r.get("family"):
        return str(a.get("matches") or a.get("inflates_into") and f"2D (-> {a['inflates_into']})" or a.get("family", "-"))
    m = a.get("matches") or {}
    if m.get("name"):
        return m["name"] + (f" with {m['settings']}" if m.get("settings") else "")
    return f"no named match ({a.get('family', '?')}, depth {a.get('depth', '?')})" if a else "-"


def _dtype_cell(r: dict) -> str:
    by = r["values_by_dtype"]
    floats = [d for d in sorted(by, key=by.get, reverse=True) if d.startswith(("float", "bfloat"))]
    return "+".join(floats or sorted(by, key=by.get, reverse=True)[:1]) or "-"


def _many(console: Console, files: list[Path], source_scheme, trust_pickle, settings, values, jobs) -> int:
    tasks = [(str(f), source_scheme, trust_pickle, settings, values) for f in files]
    with console.status(f"reading {len(files)} checkpoints"):
        reports = _describe_all(tasks, jobs)
    failed = [r for r in reports if "error" in r]
    rows = []
    for r in reports:
        if "error" in r:
            continue
        for w in r.pop("warnings", []):
            console.warn(w)
        rows.append([r["input"], r["scheme"], _arch_cell(r), f"{r['tensors']:,}", f"{r['parameters']:,}",
                     _dtype_cell(r), human_bytes(r["bytes"])]
                    + ([", ".join(r["non_finite"]) or "none"] if values else []))
    columns = ["checkpoint", "scheme", "architecture", "tensors", "parameters", "dtype", "size"]
    console.table(None, columns + (["NaN/Inf in"] if values else []), rows,
                  justify=["left", "left", "left", "right", "right", "left", "right"] + (["left"] if values else []))
    for r in failed:
        console.error(r["error"])
    code = max((r["exit_code"] for r in failed), default=0)
    if values and any(r.get("non_finite") for r in reports):
        code = code or 1
    console.emit_json({"ok": code == 0, "inputs": [str(f) for f in files], "checkpoints": reports,
                       "failed": len(failed)})
    if failed:
        console.info(f"{len(failed)} of {len(files)} checkpoints could not be read (see the errors above)")
    return code


# --- one checkpoint: the whole description -------------------------------------------------------

def _one(console: Console, checkpoint: str, source_scheme, trust_pickle, user_settings, values) -> int:
    r = _describe(checkpoint, source_scheme, trust_pickle, user_settings, values)
    console.emit_json({"ok": not r.get("non_finite"), **r})
    if r.get("family"):  # another family (X3D, Swin, ViT): its own description
        return _family_report(console, r)
    pathways = "two pathways" if r["two_pathways"] else "one pathway"
    rows = [["file", r["input"]], ["format", r["format"]],
            ["container", f"{r['container'] or '-'}{', prefix ' + r['prefix'] if r['prefix'] else ''}"],
            ["scheme", f"{r['scheme']} (2D {r['two_d'].split(' (')[0]})" if r["two_d"] else f"{r['scheme']} ({pathways})"],
            *_size_rows(r)]
    if r["dropped_entries"]:
        rows.append(["non-weight entries", ", ".join(r["dropped_entries"])])
    rows += _metadata_rows(r["metadata"])
    if r["two_d"]:
        rows.append(["architecture", f"2D {r['two_d'].split(' (')[0]}: inflate it to make a 3D network "
                     f"(inflate3d inflate {checkpoint} --arch ...)"])
    a = r.get("architecture")
    if a:
        m = a["matches"]
        rows.append(["architecture", f"{a['family']}, ResNet-{a['depth']}"
                     + (f" = {m['name']}" if m.get("name") else "")
                     + (f" with {m['settings']}" if m.get("settings") else "")
                     + (f" (no named match: {m['why']})" if m.get("why") else "")])
        for p, v in a["per_pathway"].items():
            if a["family"] == "tsm":
                rows.append([f"  {p}", f"2D ResNet, temporal shift {v['shift_place']}, {v['shifted_blocks']} shifted blocks"])
            else:
                rows.append([f"  {p}", f"stem {'x'.join(map(str, v['stem_kernel']))}, width {v['width']}, "
                             f"inflate {_pattern(v['inflate'])} {v['inflate_style']}"])
        if a["family"] == "slowfast":
            rows.append(["  fusion", f"kernel {a['fusion_kernel']}, lateral norm {a['lateral_norm']}, "
                         f"channel ratio {a['channel_ratio']}"])
        rows.append(["  head classes", str(a["head_classes"]) if a["head_classes"] else "none (backbone only)"])
        for k, f in a.get("facts", {}).items():
            rows.append([f"  {k}", f"{f['value']}  [{f['source']}]"])
        if a.get("config"):
            rows.append(["  file's config", ", ".join(f"{k}={v}" for k, v in a["config"].items())])
    console.table(None, ["", ""], rows)
    for note in (a or {}).get("notes", []):
        console.note(f"note: {note}")
    return 1 if r.get("non_finite") else 0


METADATA_SHOWN = 400  # characters of a metadata value in the table; --json has every value whole


def _metadata_rows(metadata: dict[str, str]) -> list[list[str]]:
    """A row per metadata entry; a long or many-line value (mmaction2 keeps its whole training
    config in meta['cfg']) as its start and its length."""
    rows = []
    for k, v in metadata.items():
        if len(v) > METADATA_SHOWN or "\n" in v:
            first = v.strip().splitlines()[0] if v.strip() else ""
            v = f"{first[:120]} ... ({len(v):,} characters, {len(v.splitlines()):,} lines; whole in --json)"
        rows.append([f"metadata.{k}", v])
    return rows


def _size_rows(r: dict) -> list[list[str]]:
    rows = [["size", f"{human_bytes(r['bytes'])} ({r['bytes']:,} bytes)"],
            ["tensors", f"{r['tensors']:,} ({r['parameters']:,} parameters)"],
            ["values by dtype", ", ".join(f"{d}: {n:,}" for d, n in r["values_by_dtype"].items())]]
    if "non_finite" in r:
        rows.append(["NaN/Inf", ", ".join(r["non_finite"]) if r["non_finite"] else "none (every value read)"])
    return rows


def _family_report(console: Console, r: dict) -> int:
    """A checkpoint of a registered family: the file facts, then the architecture as the family
    describes it."""
    architecture = r["architecture"]
    rows = [["file", r["input"]], ["format", r["format"]], ["container", r["container"] or "-"],
            ["scheme", r["scheme"]], *_size_rows(r)]
    rows += _metadata_rows(r["metadata"])
    rows += [[f"architecture.{k}", str(v)] for k, v in architecture.items() if k != "notes"]
    console.table(None, ["", ""], rows)
    for note in architecture.get("notes", []):
        console.note(f"note: {note}")
    return 1 if r.get("non_finite") else 0
