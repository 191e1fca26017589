"""``inflate3d``: the command line. Commands are thin: they parse options and call a module of
``inflate3d.commands``, importing torch only there, so ``inflate3d --help`` stays instant."""
from __future__ import annotations

import sys
import traceback
import warnings

import click

from . import __version__
from .console import Console

ARCH_DEFAULT = "slowfast_r50_4x16"
TARGETS = ["mmaction2", "pyslowfast", "caffe2", "pytorchvideo"]  # codebases `inflate --to` writes into
SCHEME_NAMES = ["mmaction2", "pyslowfast", "caffe2", "pytorchvideo", "torchvision3d", "torchvision", "tsm"]


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
                          help="An architecture setting, e.g. slow_pathway.lateral_norm=true or "
                               "speed_ratio=4 (repeatable); recorded in the output's metadata.")
method_help = "mean: w/T on every tap (I3D); center (or centre): w on the centre tap, zeros elsewhere."


class Group(click.Group):
    """Usage errors as one line (``error: ...``, exit 2), or under ``--json`` as the same JSON
    object every other error gives: ``{"ok": false, "error": ..., "exit_code": ...}``."""

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


def _terminate(signum, _frame) -> None:
    raise KeyboardInterrupt(signum)  # unwinds like Ctrl-C: temporary files are removed


def _run(json_mode: bool, debug: bool, fn, **kwargs) -> None:
    """Call a command body; turn inflate3d's errors into one line and an exit code.

    SIGTERM unwinds like SIGINT, so an interrupted write leaves the old file or nothing; SIGXFSZ
    is ignored so that a file-size limit surfaces as a write error instead of killing the process.
    """
    import signal

    from .errors import Inflate3dError

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    console = Console(json_mode=json_mode, quiet=kwargs.pop("quiet", False))
    warnings.showwarning = lambda message, *_args, **_kw: console.warn(str(message))
    if kwargs.get("trust_pickle"):
        console.warn("--trust-pickle: pickles that import code will be loaded and may run it; "
                     "use this only for files from people you trust")
    try:
        code = fn(console, **kwargs)
    except Inflate3dError as e:
        if debug:
            traceback.print_exc()
        console.error(str(e))
        console.emit_json({"ok": False, "error": str(e), "exit_code": e.exit_code,
                           **getattr(e, "details", {})})
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted; nothing was written")
        console.emit_json({"ok": False, "error": "interrupted; nothing was written", "exit_code": 130})
        sys.exit(130)
    sys.exit(code or 0)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="inflate3d")
def main() -> None:
    """Turn 2D ImageNet ResNets into verified 3D video networks (I3D, Slow-only, SlowFast), and
    move video checkpoints between mmaction2, PySlowFast, pytorchvideo and torchvision names."""


@main.command()
@common_options
def archs(json_mode: bool, debug: bool, **opts) -> None:
    """List the named architectures: family, depth, parameters and input clip."""
    from .commands import archs as cmd

    _run(json_mode, debug, cmd.run, **opts)


@main.command()
@click.argument("source", required=False)
@click.option("--arch", default=ARCH_DEFAULT, show_default=True, help="Target architecture (see `inflate3d archs`).")
@click.option("--to", "target", type=click.Choice(TARGETS), default="mmaction2", show_default=True,
              help="Write straight into this codebase: its names, its container and its variant of the "
                   "arch (PySlowFast, Caffe2 and pytorchvideo fuse with conv+BN+ReLU).")
@set_option
@click.option("--method", default="mean", show_default=True, metavar="[mean|center]", help=method_help)
@click.option("--head", default="none", show_default=True, help="none | imagenet (keep the 2D fc) | N (fresh head, N classes).")
@click.option("-o", "--output", help="Output file [default: checkpoints/<arch>_<method>_<source>.<ext>]; "
                                     "missing folders are created.")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "pth", "pkl"]), default=None,
              help="safetensors [default], pth (the codebase's container: mmaction2's {'state_dict', 'meta'}) "
                   "or pkl (Caffe2 blobs, with --to caffe2).")
@force_option
@click.option("--no-verify", is_flag=True, help="Skip the strict-load and boring-video checks.")
@click.option("--verify-size", default=32, show_default=True, type=click.IntRange(16, 512), help="Frame size of the verification clip.")
@click.option("--seed", default=0, show_default=True, help="Seed of fresh initialisations (fast pathway, laterals, new head) "
                                                          "and of the seeded fallback source.")
@click.option("--dry-run", is_flag=True, help="Print the 2D->3D key map and write nothing.")
@trust_option
@common_options
def inflate(json_mode: bool, debug: bool, **opts) -> None:
    """Inflate a 2D ResNet into a 3D network and verify it.

    SOURCE is a torchvision-style ResNet state dict (.safetensors, .pth, .pt),
    torchvision:resnetNN[:IMAGENET1K_V1|IMAGENET1K_V2] from the torch hub cache, or
    seeded:resnetNN:SEED. Without SOURCE: torchvision's ImageNet weights if cached, else a seeded
    initialisation (said loudly).
    """
    from .commands import inflate as cmd

    _run(json_mode, debug, cmd.run, **opts)


@main.command()
@click.argument("checkpoint")
@click.option("--against", "source", required=True, help="The 2D source it was inflated from (path or torchvision:...).")
@click.option("--arch", default=None, help="Architecture [default: from the checkpoint's metadata, else its keys].")
@set_option
@click.option("--method", default=None, metavar="[mean|center]",
              help="[default: from the metadata, else detected from the kernels]")
@click.option("--verify-size", default=32, show_default=True, type=click.IntRange(16, 512))
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
              help="safetensors [default], pth (the target codebase's container) or pkl (Caffe2 blobs).")
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
@click.argument("checkpoint")
@click.option("--from", "source_scheme", type=click.Choice(SCHEME_NAMES), help="[default: detected from the keys]")
@trust_option
@common_options
def inspect(json_mode: bool, debug: bool, **opts) -> None:
    """Describe CHECKPOINT: format, container, scheme, tensors, metadata and inferred architecture."""
    from .commands import inspect as cmd

    _run(json_mode, debug, cmd.run, **opts)


if __name__ == "__main__":  # pragma: no cover
    main()
