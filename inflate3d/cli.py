"""``inflate3d``: the command line. Commands are thin: they parse options and call a module of
``inflate3d.commands``, importing torch only there, so ``inflate3d --help`` stays instant."""
from __future__ import annotations

import os
import sys
import warnings

import click

from . import __version__
from .console import Console
from .names import METHOD_NAMES, SCHEME_NAMES, TARGET_NAMES

ARCH_DEFAULT = "slowfast_r50_4x16"
TARGETS = list(TARGET_NAMES)  # what `inflate --to` writes: a codebase's names and container, or a HF folder
SCHEME_NAMES = list(SCHEME_NAMES)


def common_options(fn):
    """--json, -q/--quiet and --debug, on every command."""
    fn = click.option("--debug", is_flag=True, help="Show the traceback of an error.")(fn)
    fn = click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors and warnings.")(fn)
    return click.option("--json", "json_mode", is_flag=True,
                        help="Print one JSON document for scripts (errors too).")(fn)


trust_option = click.option("--trust-pickle", is_flag=True,
                            help="Allow pickles that run code when loaded. Only for files you trust.")
force_option = click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
set_option = click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                          help="An architecture setting, e.g. slow_pathway.lateral_norm=true, speed_ratio=4, "
                               "with_pool2=True (repeatable): on inflate it is recorded in the output's "
                               "metadata; on convert, verify and inspect it states what the file does not.")
METHODS_METAVAR = "[" + "|".join(METHOD_NAMES) + "]"
method_help = ("mean: w/T on every tap (I3D); center (or centre): w on the centre tap, zeros elsewhere; "
               "arp: approximate rank pooling (ViViT tubelets only).")


def _terminate(signum, _frame) -> None:
    """The first SIGINT or SIGTERM unwinds like Ctrl-C (temporary files are removed); later ones
    are ignored: the process is already on its way out and its cleanup must finish (two Ctrl-C
    20 ms apart used to interrupt the cleanup itself)."""
    _ignore_interrupts()
    _SIGNALS.append(signum)
    raise KeyboardInterrupt(signum)


def _signal_module():
    """The C module ``_signal``: ``signal`` wraps the same functions in enums whose making costs
    0.5-1 ms of each command's start (a twentieth of ``inspect``'s work)."""
    try:
        import _signal as signal
    except ImportError:  # an interpreter without it
        import signal
    return signal


def _ignore_interrupts() -> None:
    """From here on SIGINT and SIGTERM change nothing: cleanup must finish, or the work is done and
    the exit code already says what is on disk (Python's default handler would end the process by
    the signal while a complete output is in place)."""
    signal = _signal_module()

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


_SIGNALS: list[int] = []  # signals received, in order


def _install_signal_handlers() -> None:
    """SIGINT and SIGTERM unwind (see ``_terminate``); SIGXFSZ is ignored so that a file-size
    limit surfaces as a write error instead of killing the process."""
    signal = _signal_module()

    for s in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(s) != signal.SIG_IGN:  # nohup and friends keep their choice
            signal.signal(s, _terminate)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _committed() -> list:
    """Outputs this process has given their final name (none if nothing was ever written)."""
    save = sys.modules.get("inflate3d.io.save")
    return list(save.COMMITTED) if save is not None else []


def _interrupted(console: Console, signum, before: int) -> None:
    """Say what is on disk: 0 when the output was already complete and in place (the interrupt
    came after the commit), else 128 + the signal and nothing was written."""
    signal = _signal_module()

    done = _committed()[before:]
    if done:
        message = _complete(done)
        console.warn(message)
        console.emit_json({"ok": True, "interrupted": True, "output": str(done[-1]), "note": message})
        sys.exit(0)
    code = 128 + (signum if signum in (signal.SIGINT, signal.SIGTERM) else signal.SIGINT)
    console.error("interrupted; nothing was written")
    console.emit_json({"ok": False, "error": "interrupted; nothing was written", "exit_code": code})
    sys.exit(code)


def _complete(done: list) -> str:
    return f"interrupted after {', '.join(map(str, done))} was written; the file is complete"


def _after_work(console: Console, before: int) -> None:
    """The command's work is done and its exit code says what is on disk: a signal from here on
    only says so (Python's default handling would end the process by the signal while a complete
    output is in place, and a KeyboardInterrupt raised during the exit escapes every handler)."""
    signal = _signal_module()

    def late(_signum, _frame) -> None:
        _ignore_interrupts()
        if done := _committed()[before:]:
            console.warn(_complete(done))

    for s in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(s) != signal.SIG_IGN:
            signal.signal(s, late)


MAX_CLASSES = 100_000


def _check_options(kwargs: dict) -> None:
    from .errors import Inflate3dError

    seed = kwargs.get("seed")
    if isinstance(seed, int) and not 0 <= seed < 2**64:
        raise Inflate3dError(f"--seed {seed}: must be between 0 and 2**64 - 1")
    head = kwargs.get("head")
    if isinstance(head, str) and head.strip().isdigit() and int(head) > MAX_CLASSES:
        raise Inflate3dError(f"--head {head}: at most {MAX_CLASSES:,} classes")


def _run(json_mode: bool, debug: bool, fn, **kwargs) -> None:
    """Call a command body; turn every failure into one line and an exit code (and, under
    ``--json``, one JSON object: ``{"ok": false, "schema", "error", "exit_code", ...details}``).

    2: bad input, or the input could not be read or the output not written (an ``OSError``, out of
    memory); 1: a check failed; 3: an internal error (a bug: ``--debug`` shows the traceback);
    130/143: interrupted, nothing written; 0 also when interrupted after the output was complete.
    """
    _install_signal_handlers()
    before, signals = len(_committed()), len(_SIGNALS)
    console = Console(json_mode=json_mode, quiet=kwargs.pop("quiet", False))
    warnings.showwarning = lambda message, *_args, **_kw: console.warn(str(message))
    if kwargs.get("trust_pickle"):
        console.warn("--trust-pickle: pickles that import code will be loaded and may run it; "
                     "use this only for files from people you trust")
    try:
        try:
            _check_options(kwargs)
            code = fn(console, **kwargs)
            _after_work(console, before)
        except KeyboardInterrupt as e:
            _interrupted(console, e.args[0] if e.args else None, before)
        except Exception as e:  # noqa: BLE001 - every failure is one line; --debug shows where
            if len(_SIGNALS) > signals:  # torch turns an interrupt inside its writer into a RuntimeError
                _interrupted(console, _SIGNALS[signals], before)
            if debug:
                import traceback  # only here: 4 ms of start-up for every command otherwise

                traceback.print_exc()
            message, exit_code = _one_line(e)
            console.error(message)
            console.emit_json({"ok": False, "error": message, "exit_code": exit_code,
                               **getattr(e, "details", {})})
            sys.exit(exit_code)
    except KeyboardInterrupt as e:  # a signal while reporting an error
        _interrupted(console, e.args[0] if e.args else None, before)
    sys.exit(code or 0)


def _one_line(e: Exception) -> tuple[str, int]:
    from .errors import BAD_INPUT, Inflate3dError

    if isinstance(e, Inflate3dError):
        return str(e), e.exit_code
    if isinstance(e, OSError):  # reading an input or writing an output
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e}", BAD_INPUT
    first = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, MemoryError) or "can't allocate memory" in first:
        return f"not enough memory ({first[:200]})", BAD_INPUT
    return f"internal error ({type(e).__name__}: {first[:200]}); rerun with --debug and report it", 3


class Group(click.Group):
    """Usage errors as one line (``error: ...``, exit 2), or under ``--json`` as the same JSON
    object every other error gives: ``{"ok": false, "error": ..., "exit_code": ...}``. An
    interrupt before a command reached ``_run`` (while torch imports) or after it returned is one
    line too, never click's "Aborted!", and says what is on disk."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            Console(json_mode="--json" in argv).error("aborted")
            sys.exit(1)
        except click.ClickException as e:
            console = Console(json_mode="--json" in argv)
            where = f" (see: {e.ctx.command_path} --help)" if getattr(e, "ctx", None) else ""
            message = e.format_message()
            console.error(f"{message}{where}")
            console.emit_json({"ok": False, "error": message, "exit_code": e.exit_code})
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context):
        before = len(_committed())
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:  # also one that lands while a finished command exits
            _interrupted(Console(json_mode="--json" in getattr(sys, "argv", ())[1:]), e.args[0] if e.args else None,
                         before)


def script() -> None:
    """The ``inflate3d`` command and ``python -m inflate3d``: ``main``, then out of the process
    without the interpreter's teardown (``_leave``). Tests call ``main`` in their own process."""
    global _PREVIOUS_UNRAISABLE
    _PREVIOUS_UNRAISABLE, sys.unraisablehook = sys.unraisablehook, _unraisable
    try:
        main()
    except SystemExit as e:
        try:
            _leave(e.code)
        except KeyboardInterrupt:  # a signal while leaving: the work is done, its code stands
            pass
        raise


_PREVIOUS_UNRAISABLE = sys.unraisablehook


def _unraisable(unraisable) -> None:
    """An interrupt that ``_terminate`` raised where Python cannot raise (a weakref callback or a
    ``__del__`` that the signal happened to land in: Python prints "Exception ignored" and carries
    on, and the Ctrl-C was lost while the next ones are ignored) is raised again, once the main
    thread is back in code that can raise. Anything else goes to the previous hook."""
    e = unraisable.exc_value
    if isinstance(e, KeyboardInterrupt) and e.args and _SIGNALS and e.args[0] == _SIGNALS[-1]:
        import threading

        signal = _signal_module()

        signal.signal(e.args[0], _again)
        threading.Thread(target=_interrupt_main, args=(e.args[0],), daemon=True).start()
        return
    _PREVIOUS_UNRAISABLE(unraisable)


def _again(signum, _frame) -> None:
    """``_terminate`` for an interrupt delivered a second time: counted once."""
    _ignore_interrupts()
    raise KeyboardInterrupt(signum)


def _interrupt_main(signum: int) -> None:
    import _thread
    import time

    time.sleep(0.001)  # the callback that swallowed it has returned by then
    _thread.interrupt_main(signum)


def _leave(code) -> None:
    """End the process now with ``code``, as ``sys.exit`` would but for the teardown.

    Once torch is imported, tearing the interpreter down (freeing every module's objects,
    unloading torch's libraries) takes 0.45 s here, more than inflating a ResNet-50 does, and
    briefly ~100 MB more memory than the command ever held. By the time ``main`` exits every
    output is committed or removed, so nothing is left for the teardown to do: the atexit
    handlers run, stdout and stderr are flushed, and ``os._exit`` ends the process. Where that
    would cut something short (a thread or a child process still running, an exit status that
    is not a number, output that cannot be flushed) it returns and the normal exit happens.
    """
    import atexit
    import threading

    if code is None:
        code = 0
    if not isinstance(code, int) or not 0 <= code <= 255:
        return
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.active_children():
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # the normal exit reports it, as Python does
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 120  # what Python's own exit gives when the final flush fails
    os._exit(code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="inflate3d")
def main() -> None:
    """Turn 2D ImageNet ResNets (and ViTs) into verified 3D video networks (I3D, Slow-only, SlowFast,
    X3D, Video Swin, TimeSformer, ViViT), and move video checkpoints between mmaction2, PySlowFast,
    pytorchvideo, torchvision and Hugging Face names."""
    _install_signal_handlers()


@main.command()
@common_options
def archs(json_mode: bool, debug: bool, **opts) -> None:
    """List the named architectures: family, depth, parameters and input clip."""
    from .commands import archs as cmd

    _run(json_mode, debug, cmd.run, **opts)


@main.command()
@click.argument("source", required=False)
@click.option("--arch", default=None, help=f"Target architecture (see `inflate3d archs`).  [default: {ARCH_DEFAULT}]")
@click.option("--to", "target", type=click.Choice(TARGETS), default="mmaction2", show_default=True,
              help="Write straight into this codebase: its names, its container and its variant of the "
                   "arch (PySlowFast, Caffe2 and pytorchvideo fuse with conv+BN+ReLU); huggingface: a "
                   "folder (config.json + model.safetensors) for from_pretrained (timesformer_*, vivit_*).")
@set_option
@click.option("--into", default=None, metavar="MODULE:FACTORY",
              help="Inflate into your own model instead: imports MODULE (this runs its code) and calls "
                   "FACTORY(**kwargs), e.g. torchvision.models.video:r3d_18; writes its state dict in its own names (a plain dict with --format pth).")
@click.option("--kwargs", "into_kwargs", default=None, metavar="JSON", help="With --into: the factory's keyword arguments.")
@click.option("--hint", "hints", multiple=True, metavar="LAYER=2D_LAYER",
              help="With --into: settle an ambiguous alignment (repeatable), e.g. stem.0=conv1.")
@click.option("--strict", is_flag=True, help="With --into: fail if any conv / norm of the model has no 2D counterpart.")
@click.option("--input-shape", default=None, metavar="JSON",
              help="With --into: the input shape its forward takes, if not a usual clip, e.g. [[1,3,8,224,224],[1,3,32,224,224]].")
@click.option("--method", default="mean", show_default=True, metavar=METHODS_METAVAR, help=method_help)
@click.option("--head", default="none", show_default=True, help="none | imagenet (keep the 2D fc) | N (fresh head, N classes).")
@click.option("-o", "--output", help="Output file [default: checkpoints/<arch>_<method>_<source>.<ext>]; "
                                     "missing folders are created.")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "pth", "pkl"]), default=None,
              help="[default: from the -o extension, else safetensors] pth (the codebase's container: mmaction2's "
                   "{'state_dict', 'meta'}) or pkl (Caffe2 blobs, with --to caffe2).")
@force_option
@click.option("--no-verify", is_flag=True, help="Skip the strict-load and boring-video checks.")
@click.option("--verify-size", default=32, show_default=True, type=click.IntRange(16, 512), help="Frame size of the verification clip.")
@click.option("--seed", default=0, show_default=True, help="Seed of fresh initialisations (fast pathway, laterals, new head) "
                                                          "and of the seeded fallback source.")
@click.option("--dry-run", is_flag=True, help="Print the 2D->3D key map and write nothing.")
@trust_option
@common_options
def inflate(json_mode: bool, debug: bool, **opts) -> None:
    """Inflate a 2D ResNet (or ViT) into a 3D network and verify it.

    SOURCE is a torchvision-style ResNet state dict (.safetensors, .pth, .pt), a 2D ViT (timm,
    torchvision or Hugging Face weights or folder) for timesformer_* / vivit_*,
    torchvision:resnetNN[:IMAGENET1K_V1|IMAGENET1K_V2] from the torch hub cache, or
    seeded:resnetNN:SEED. Without SOURCE: torchvision's ImageNet weights if cached, else a seeded
    initialisation (said loudly).

    With --into MODULE:FACTORY the 2D weights go into any 3D model whose layer graph corresponds
    (aligned by structure, not names), with a report of every tensor and a per-layer proof.
    """
    into_opts = {k: opts.pop(k) for k in ("into", "into_kwargs", "hints", "strict", "input_shape")}
    if into_opts["into"]:
        from .commands import inflate_into as cmd

        given = click.get_current_context().get_parameter_source
        named_only = [f"--{k.replace('target', 'to').replace('settings', 'set')}"
                      for k in ("arch", "target", "settings", "head", "seed")
                      if given(k) is not click.core.ParameterSource.DEFAULT]
        if named_only:
            raise click.UsageError(f"{', '.join(named_only)} apply to named architectures, not --into")
        _run(json_mode, debug, cmd.run, source=opts["source"], into=into_opts["into"],
             kwargs=into_opts["into_kwargs"], method=opts["method"], output=opts["output"], fmt=opts["fmt"],
             force=opts["force"], strict=into_opts["strict"], hints=into_opts["hints"],
             input_shape=into_opts["input_shape"], no_verify=opts["no_verify"], verify_size=opts["verify_size"],
             dry_run=opts["dry_run"], trust_pickle=opts["trust_pickle"], quiet=opts["quiet"])
        return
    if into_opts["into_kwargs"] or into_opts["hints"] or into_opts["strict"] or into_opts["input_shape"]:
        raise click.UsageError("--kwargs, --hint, --strict and --input-shape need --into")
    opts["arch"] = opts["arch"] or ARCH_DEFAULT
    from .commands import inflate as cmd

    _run(json_mode, debug, cmd.run, **opts)


@main.command()
@click.argument("checkpoint")
@click.option("--against", "source", required=True, help="The 2D source it was inflated from (path or torchvision:...).")
@click.option("--arch", default=None, help="Architecture [default: from the checkpoint's metadata, else its keys].")
@set_option
@click.option("--method", default=None, metavar=METHODS_METAVAR,
              help="[default: from the metadata, else detected from the kernels]")
@click.option("--verify-size", default=32, show_default=True, type=click.IntRange(16, 512))
@click.option("--frames", type=click.IntRange(1, 512), default=None,
              help="Clip length to check (Video Swin: exact only at some lengths, see `inspect`).")
@trust_option
@common_options
def verify(json_mode: bool, debug: bool, **opts) -> None:
    """Check an inflated CHECKPOINT: strict load, then boring-video equivalence with its 2D source."""
    from .commands import verify as cmd

    _run(json_mode, debug, cmd.run, **opts)


@main.command()
@click.argument("checkpoint")
@click.option("-o", "--output", help="Output file (required unless --dry-run); missing folders are created.")
@click.option("--from", "source_scheme", type=click.Choice(SCHEME_NAMES), help="[default: detected from the keys]")
@click.option("--to", "target_scheme", type=click.Choice(SCHEME_NAMES), default="mmaction2", show_default=True)
@click.option("--arch", default=None, help="Native architecture to check against [default: inferred from keys and shapes].")
@set_option
@click.option("--format", "fmt", type=click.Choice(["safetensors", "pth", "pkl"]), default=None,
              help="[default: from the -o extension] safetensors, pth (the target codebase's container) or pkl (Caffe2 blobs).")
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default=None, help="Cast floating tensors [default: keep].")
@force_option
@click.option("--dry-run", is_flag=True, help="Print the key map and write nothing.")
@trust_option
@common_options
def convert(json_mode: bool, debug: bool, **opts) -> None:
    """Convert CHECKPOINT between mmaction2, PySlowFast (and its Caffe2 blobs), pytorchvideo and
    torchvision-style 3D names, through the native names; prove it by converting back."""
    from .commands import convert as cmd

    _run(json_mode, debug, cmd.run, **opts)


@main.command()
@click.argument("a")
@click.argument("b")
@click.option("--atol", default=0.0, show_default=True, type=click.FloatRange(min=0), help="Absolute tolerance.")
@click.option("--rtol", default=0.0, show_default=True, type=click.FloatRange(min=0), help="Relative tolerance (of B's values).")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1), help="Worst tensors to list.")
@click.option("--keys", default=None, help="Compare only keys (native names) matching this regex.")
@click.option("--inflated", is_flag=True, help="One is a 3D checkpoint, the other the 2D ResNet it was inflated from.")
@trust_option
@common_options
def diff(json_mode: bool, debug: bool, **opts) -> None:
    """Compare checkpoints A and B, across naming schemes (or across the inflation with --inflated).
    Exit 0: equal within tolerance; 1: they differ; 2: bad input."""
    from .commands import diff as cmd

    _run(json_mode, debug, cmd.run, **opts)


@main.command()
@click.argument("checkpoint", nargs=-1, required=True)
@click.option("--from", "source_scheme", type=click.Choice(SCHEME_NAMES), help="[default: detected from the keys]")
@click.option("--values", is_flag=True, help="Also read every tensor and screen it for NaN/Inf (exit 1 if any); "
                                             "without it only the structure is read.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=None,
              help="Worker processes for many checkpoints.  [default: the cores available]")
@set_option
@trust_option
@common_options
def inspect(json_mode: bool, debug: bool, **opts) -> None:
    """Describe CHECKPOINT: format, container, scheme, tensors, metadata and inferred architecture.
    Several checkpoints, or folders (walked for checkpoint files), get one row each. Only headers
    and structure are read: seconds for a folder, whatever the files' size."""
    from .commands import inspect as cmd

    _run(json_mode, debug, cmd.run, **opts)


if __name__ == "__main__":  # pragma: no cover
    main()
