"""inflate3d benchmarks: whole processes and forwards, each against a baseline measured in the same run.

    .venv/bin/python benchmarks/run.py [--repeats N] [--out benchmarks/results/latest.json]

Baselines and target run in turn (baseline, target, baseline, target, ...) so machine drift
cancels; every figure is a median, every ratio the median of per-round ratios. Weights are seeded torchvision
models written to a temporary folder; nothing is downloaded. Peak memory is the child's own
ru_maxrss (os.wait4), wall time is measured around the child. Children may write bytecode caches
(as an installed package has them), whatever PYTHONDONTWRITEBYTECODE says. Every run that writes a
file starts after ``os.sync()``: otherwise the previous run's ~130 MB of dirty pages are flushed
while the next process writes, and throttle whichever side of the pair comes next.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
INFLATE3D = [PY, "-m", "inflate3d"]


def run_process(cmd: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process, which must exit with a code in ``ok``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) not in ok:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024


def alternate(baseline, target, repeats: int, before=None) -> dict:
    """Run baseline/target pairs alternately after one warm-up each; medians and ratios."""
    for fn in (baseline, target):
        if before:
            before()
        fn()
    rows = []
    for _ in range(repeats):
        if before:
            before()
        b = baseline()
        if before:
            before()
        t = target()
        rows.append((b, t))
    bw, bm = zip(*(r[0] for r in rows))
    tw, tm = zip(*(r[1] for r in rows))
    return {"baseline_s": statistics.median(bw), "target_s": statistics.median(tw),
            "ratio": statistics.median(t[0] / b[0] for b, t in rows),
            "difference_s": statistics.median(t[0] - b[0] for b, t in rows),
            "baseline_peak_mib": statistics.median(bm), "target_peak_mib": statistics.median(tm)}


def interleave(fns: dict, repeats: int, before=None) -> dict[str, list[tuple[float, float]]]:
    """Run every function of ``fns`` in turn, ``repeats`` rounds after one warm-up round; each
    name's (wall, peak) per round."""
    got: dict[str, list] = {name: [] for name in fns}
    for i in range(repeats + 1):
        for name, fn in fns.items():
            if before:
                before()
            r = fn()
            if i:
                got[name].append(r)
    return got


def ratio_of(got: dict, target: str, baseline: str) -> float:
    """The median of per-round ratios of wall times."""
    return statistics.median(t[0] / b[0] for b, t in zip(got[baseline], got[target]))


def lean(code: str) -> str:
    """``code`` run as inflate3d's own processes start and end (``inflate3d.torch_import``, the
    ``os._exit`` of ``inflate3d.cli.script``): the collector paused while torch imports, no
    interpreter teardown. A baseline that separates inflate3d's work from those two savings."""
    return ("import gc, os, sys\ngc.disable()\nimport torch\ngc.enable()\ngc.freeze()\n" + code
            + "\nsys.stdout.flush()\nos._exit(0)")


def floor_script(src: Path, out: Path, nbytes: int, *, lean_exit: bool = False) -> list[str]:
    """The I/O floor: import torch and safetensors, load the 2D file, write a file of the output's
    size (``lean_exit``: started and ended as inflate3d's processes are, see ``lean``)."""
    code = (f"import torch, safetensors.torch as st\nsd = st.load_file({str(src)!r})\n"
            f"with open({str(out)!r}, 'wb') as f:\n    f.write(bytes({nbytes}))\n    f.flush()\n"
            f"    import os; os.fsync(f.fileno())")
    return [PY, "-c", lean(code) if lean_exit else code]


def make_sources(tmp: Path, depths) -> dict[int, Path]:
    code = ("import sys, torch, torchvision, safetensors.torch as st\n"
            "torch.manual_seed(0)\n"
            "for d in map(int, sys.argv[2:]):\n"
            "    m = getattr(torchvision.models, f'resnet{d}')()\n"
            "    st.save_file(m.state_dict(), f'{sys.argv[1]}/resnet{d}.safetensors')\n")
    subprocess.run([PY, "-c", code, str(tmp), *map(str, depths)], check=True)
    return {d: tmp / f"resnet{d}.safetensors" for d in depths}


def bench_inflate(tmp: Path, src: Path, arch: str, repeats: int) -> dict:
    out = tmp / f"{arch}.safetensors"
    floor_out = tmp / "floor.bin"
    cmd = INFLATE3D + ["inflate", str(src), "--arch", arch, "-o", str(out), "--no-verify", "--force"]
    run_process(cmd)
    size = out.stat().st_size

    def clean():
        for p in (out, floor_out):
            p.unlink(missing_ok=True)
        os.sync()

    got = interleave({"floor": lambda: run_process(floor_script(src, floor_out, size)),
                      "lean": lambda: run_process(floor_script(src, floor_out, size, lean_exit=True)),
                      "target": lambda: run_process(cmd)}, repeats, before=clean)
    return summary(got, output_mib=size / 2**20)


def summary(got: dict, **extra) -> dict:
    """Medians of ``interleave``'s rounds: the target against the plain baseline (``baseline``/``floor``)
    and against the same baseline started and ended as inflate3d's processes are (``lean``)."""
    med = statistics.median
    plain = "floor" if "floor" in got else "baseline"
    res = {"baseline_s": med(w for w, _ in got[plain]), "lean_s": med(w for w, _ in got["lean"]),
           "target_s": med(w for w, _ in got["target"]),
           "ratio": ratio_of(got, "target", plain), "ratio_lean": ratio_of(got, "target", "lean"),
           "difference_s": med(t[0] - b[0] for b, t in zip(got[plain], got["target"])),
           "baseline_peak_mib": med(m for _, m in got[plain]), "target_peak_mib": med(m for _, m in got["target"]),
           **extra}
    res["extra_peak_mib"] = res["target_peak_mib"] - res["baseline_peak_mib"]
    return res


def bench_verify_cost(tmp: Path, src: Path, repeats: int) -> dict:
    """inflate with verification vs without: the increment is the cost of verifying."""
    out = tmp / "v.safetensors"
    base = INFLATE3D + ["inflate", str(src), "--arch", "slowfast_r50_4x16", "-o", str(out), "--force"]
    res = alternate(lambda: run_process(base + ["--no-verify"]), lambda: run_process(base), repeats)
    res["verify_s"] = res["difference_s"]
    return res


def bench_convert(tmp: Path, repeats: int) -> dict:
    """pytorchvideo SlowFast-R50 -> mmaction2, against a process that loads and saves the same bytes."""
    src, out, base_out = tmp / "pv_slowfast.safetensors", tmp / "mm.safetensors", tmp / "copy.safetensors"
    code = ("import torch, safetensors.torch as st\nfrom pytorchvideo.models.slowfast import create_slowfast\n"
            f"torch.manual_seed(0)\nst.save_file(create_slowfast().state_dict(), {str(src)!r})\n")
    subprocess.run([PY, "-W", "ignore", "-c", code], check=True, capture_output=True)
    copy = (f"import os, torch, safetensors.torch as st\nst.save_file(st.load_file({str(src)!r}), "
            f"{str(base_out)!r})\nfd = os.open({str(base_out)!r}, os.O_RDONLY)\nos.fsync(fd)")  # durable, as ours
    target = INFLATE3D + ["convert", str(src), "-o", str(out)]

    def clean():
        for p in (out, base_out):
            p.unlink(missing_ok=True)
        os.sync()

    got = interleave({"baseline": lambda: run_process([PY, "-c", copy]),
                      "lean": lambda: run_process([PY, "-c", lean(copy)]),
                      "target": lambda: run_process(target)}, repeats, before=clean)
    return summary(got)


def bench_diff(tmp: Path, src: Path, repeats: int, fmt: str = "safetensors") -> dict:
    """diff two SlowFast-R50 files (``fmt``: safetensors, or mmaction2 .pth torch zips), against
    `convert` of one of them (wall) and against an interpreter that imports torch (peak RSS). The
    three run in turn, `repeats` times after one warm-up each; figures are medians, ratios the
    medians of per-round ratios."""
    a, b = tmp / f"diff_a.{fmt}", tmp / f"diff_b.{fmt}"
    for out, seed in ((a, 0), (b, 1)):
        out.unlink(missing_ok=True)
        run_process(INFLATE3D + ["inflate", str(src), "--arch", "slowfast_r50_4x16", "--seed", str(seed),
                                 "-o", str(out), "--no-verify"])
    size_mib = a.stat().st_size / 2**20
    converted = tmp / "diff_convert.safetensors"
    torch_only = [PY, "-c", lean("import safetensors.torch")]  # no teardown, whose peak the CLI does not have
    convert = INFLATE3D + ["convert", str(a), "-o", str(converted)]  # as bench_convert runs it
    target = INFLATE3D + ["diff", str(a), str(b)]  # exit 1: the two differ

    def round_() -> tuple:
        converted.unlink(missing_ok=True)
        os.sync()
        return run_process(torch_only), run_process(convert), run_process(target, ok=(1,))

    round_()  # warm-up
    rounds = [round_() for _ in range(repeats)]
    converted.unlink(missing_ok=True)
    med = statistics.median
    res = {"file_mib": size_mib,
           "torch_s": med(t[0] for t, _, _ in rounds), "convert_s": med(c[0] for _, c, _ in rounds),
           "target_s": med(d[0] for _, _, d in rounds),
           "ratio_to_convert": med(d[0] / c[0] for _, c, d in rounds),
           "baseline_peak_mib": med(t[1] for t, _, _ in rounds), "convert_peak_mib": med(c[1] for _, c, _ in rounds),
           "target_peak_mib": med(d[1] for _, _, d in rounds),
           "extra_peak_mib": med(d[1] - t[1] for t, _, d in rounds)}
    res["peak_over_file"] = res["extra_peak_mib"] / size_mib
    return res


def make_zoo(tmp: Path, src50: Path) -> dict[str, Path]:
    """Real-size checkpoints of the kinds people keep: SlowFast-R50 as mmaction2 safetensors (128 MiB)
    and PySlowFast .pyth, I3D-R152 as a torch .pth (280 MB), a 2D ResNet-50 .pth."""
    sf, pysf, i3d, r50 = (tmp / n for n in ("zoo_sf.safetensors", "zoo_sf.pyth", "zoo_i3d_r152.pth", "zoo_r50.pth"))
    for p in (sf, pysf):
        p.unlink(missing_ok=True)
    run_process(INFLATE3D + ["inflate", str(src50), "--arch", "slowfast_r50_4x16", "-o", str(sf), "--no-verify"])
    run_process(INFLATE3D + ["inflate", str(src50), "--arch", "slowfast_r50_4x16", "--to", "pyslowfast",
                             "--format", "pth", "-o", str(pysf), "--no-verify"])
    code = ("import sys, torch, torchvision\nfrom inflate3d import build_model\ntorch.manual_seed(0)\n"
            "torch.save({'state_dict': build_model('i3d_r152').state_dict(), 'meta': {'epoch': 1}}, sys.argv[1])\n"
            "torch.save(torchvision.models.resnet50().state_dict(), sys.argv[2])\n")
    subprocess.run([PY, "-c", code, str(i3d), str(r50)], check=True, cwd=ROOT)
    return {"safetensors": sf, "pyth": pysf, "pth": i3d, "2d": r50}


def bench_inspect(tmp: Path, zoo: dict[str, Path], repeats: int) -> dict:
    """inspect of one big file against the CLI's own start-up (``inflate3d --help``), and a folder
    of 50 checkpoints (the zoo's files hard-linked ten times each: inspect reads headers only)."""
    out: dict = {}
    start = alternate(lambda: run_process([PY, "-c", "pass"]), lambda: run_process(INFLATE3D + ["--help"]), repeats)
    out["python_s"], out["cli_s"] = start["baseline_s"], start["target_s"]
    for kind in ("pth", "safetensors"):
        res = alternate(lambda: run_process(INFLATE3D + ["--help"]),
                        lambda: run_process(INFLATE3D + ["inspect", str(zoo[kind])]), repeats)
        res["file_mb"] = zoo[kind].stat().st_size / 1e6
        out[kind] = res
    folder = tmp / "zoo50"
    folder.mkdir(exist_ok=True)
    for i in range(50):
        src = list(zoo.values())[i % len(zoo)]
        link = folder / f"{i:02d}_{src.name}"
        if not link.exists():
            os.link(src, link)
    res = alternate(lambda: run_process([PY, "-c", "pass"]), lambda: run_process(INFLATE3D + ["inspect", str(folder)]),
                    max(2, repeats // 2))
    res["files"] = 50
    res["mib"] = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    out["folder"] = res
    code = ("import sys\nfrom inflate3d.cli import main\nsys.argv = ['inflate3d', 'inspect', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)")
    out["imports_torch"] = subprocess.run([PY, "-c", code, str(zoo["pth"])], capture_output=True, text=True,
                                          cwd=ROOT).stderr.strip().endswith("True")
    return out


FORWARD = r"""
import json, statistics, sys, time, torch
torch.set_num_threads(2)
from inflate3d import build_model
from pytorchvideo.models.slowfast import create_slowfast
torch.manual_seed(0)
native = build_model("slowfast_r50_8x8").eval()
peer = create_slowfast().eval()
clip = torch.randn(1, 3, 32, 224, 224)
slow, fast = clip[:, :, ::4].contiguous(), clip
def t_native():
    t = time.perf_counter(); native(clip); return time.perf_counter() - t
def t_peer():
    t = time.perf_counter(); peer([slow.clone(), fast.clone()]); return time.perf_counter() - t
with torch.inference_mode():
    t_native(); t_peer()
    pairs = [(t_peer(), t_native()) for _ in range(int(sys.argv[1]))]
print(json.dumps({"baseline_s": statistics.median(p for p, _ in pairs),
                  "target_s": statistics.median(n for _, n in pairs),
                  "ratio": statistics.median(n / p for p, n in pairs)}))
"""


def bench_forward(repeats: int) -> dict:
    out = subprocess.run([PY, "-c", FORWARD, str(repeats)], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_help(repeats: int) -> dict:
    base = alternate(lambda: run_process([PY, "-c", "pass"]), lambda: run_process(INFLATE3D + ["--help"]), repeats)
    code = "import sys, inflate3d.cli; print('torch' in sys.modules)"
    base["imports_torch"] = subprocess.run([PY, "-c", code], capture_output=True, text=True).stdout.strip() == "True"
    return base


def machine() -> dict:
    # torch is not imported here: children forked from a large parent would report its pages.
    from importlib.metadata import version

    return {"date": datetime.date.today().isoformat(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": version("torch"), "cpu": platform.processor() or platform.machine()}


def main() -> None:
    # Children run as an installed package does: with its modules' bytecode cached (the warm-ups
    # write it). An environment that forbids writing it (PYTHONDONTWRITEBYTECODE, set on this
    # machine) would charge every process for compiling inflate3d from source.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--render-only", action="store_true", help="re-print the table of --out, measure nothing")
    args = ap.parse_args()
    if args.render_only:
        results = json.loads(args.out.read_text())
        render(results, results["repeats"], args.out)
        return
    results: dict = {"machine": machine(), "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        depths = (50,) if args.skip_scaling else (18, 50, 101, 152)
        sources = make_sources(tmp, depths)
        results["inflate_slowfast"] = bench_inflate(tmp, sources[50], "slowfast_r50_4x16", args.repeats)
        results["verify_cost"] = bench_verify_cost(tmp, sources[50], args.repeats)
        results["convert"] = bench_convert(tmp, args.repeats)
        results["diff"] = bench_diff(tmp, sources[50], args.repeats)
        results["diff_pth"] = bench_diff(tmp, sources[50], args.repeats, fmt="pth")
        results["forward"] = bench_forward(args.repeats)
        results["verify_cost"]["ratio_to_forward"] = results["verify_cost"]["verify_s"] / results["forward"]["baseline_s"]
        results["help"] = bench_help(args.repeats)
        results["inspect"] = bench_inspect(tmp, make_zoo(tmp, sources[50]), args.repeats)
        if not args.skip_scaling:
            results["scaling"] = {f"i3d_r{d}": bench_inflate(tmp, sources[d], f"i3d_r{d}", max(2, args.repeats // 2))
                                  for d in depths}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    render(results, args.repeats, args.out)


def render(results: dict, repeats: int, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = table_rows(results)
    m = results["machine"]
    title = (f"inflate3d benchmarks, {m['date']}, {m['cores']} cores, Python {m['python']}, "
             f"torch {m['torch']}, median of {repeats}")
    table = Table(title=title, title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("measure", "target") else "right")
    for r in rows:
        table.add_row(*r[:-1], "yes" if r[-1] else "[bold red]NO[/]")
    Console(width=160).print(table)
    md = [f"{title}:", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join([*r[:-1], "yes" if r[-1] else "**NO**"]) + " |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"figures written to {out} and {out.with_suffix('.md')}")


COLUMNS = ("measure", "baseline", "inflate3d", "ratio", "target", "holds")


def table_rows(results: dict) -> list[list]:
    inf, ver, fwd, hlp, cvt = (results[k] for k in ("inflate_slowfast", "verify_cost", "forward", "help", "convert"))
    rows = [
        ["inflate R50 -> SlowFast-R50 4x16, --no-verify, wall (baseline: I/O floor)",
         f"{inf['baseline_s']:.2f} s", f"{inf['target_s']:.2f} s", f"{inf['ratio']:.2f}", "<= 1.10",
         inf["ratio"] <= 1.10],
        ["same, peak RSS (baseline: I/O floor)", f"{inf['baseline_peak_mib']:.0f} MiB",
         f"{inf['target_peak_mib']:.0f} MiB", f"+{inf['extra_peak_mib']:.0f} MiB", "<= +150 MiB",
         inf["extra_peak_mib"] <= 150],
        ["  for reference: same wall (baseline: that floor started and ended as inflate3d's processes are: "
         "collector paused for `import torch`, no interpreter teardown)",
         f"{inf['lean_s']:.2f} s", f"{inf['target_s']:.2f} s", f"{inf['ratio_lean']:.2f}", "-", True],
        ["verification cost of SlowFast-R50 (baseline: 1 pytorchvideo SlowFast forward, 32x224x224)",
         f"{fwd['baseline_s']:.2f} s", f"{ver['verify_s']:.2f} s", f"{ver['ratio_to_forward']:.2f}", "<= 3",
         ver["ratio_to_forward"] <= 3],
        ["  for reference: the whole inflate process with verification (baseline: that forward)",
         f"{fwd['baseline_s']:.2f} s", f"{ver['target_s']:.2f} s", f"{ver['target_s'] / fwd['baseline_s']:.2f}",
         "-", True],
        ["convert pytorchvideo SlowFast-R50 -> mmaction2, wall (baseline: load + save the same bytes)",
         f"{cvt['baseline_s']:.2f} s", f"{cvt['target_s']:.2f} s", f"{cvt['ratio']:.2f}", "<= 1.15",
         cvt["ratio"] <= 1.15],
        ["  for reference: same wall (baseline: that load + save started and ended as inflate3d's processes are)",
         f"{cvt['lean_s']:.2f} s", f"{cvt['target_s']:.2f} s", f"{cvt['ratio_lean']:.2f}", "-", True],
        ["forward slowfast_r50_8x8, 1x3x32x224x224, 2 threads (baseline: pytorchvideo create_slowfast)",
         f"{fwd['baseline_s']:.2f} s", f"{fwd['target_s']:.2f} s", f"{fwd['ratio']:.2f}", "<= 1.0",
         fwd["ratio"] <= 1.0],
        ["inflate3d --help (baseline: python -c pass)", f"{hlp['baseline_s']:.2f} s",
         f"{hlp['target_s']:.2f} s", f"{hlp['ratio']:.2f}", "<= 0.3 s, torch not imported",
         hlp["target_s"] <= 0.3 and not hlp["imports_torch"]],
    ]
    for key, label in (("diff", "safetensors"), ("diff_pth", "mmaction2 .pth")):
        if key not in results:
            continue
        d = results[key]
        rows += [
            [f"diff two SlowFast-R50 {label} files, wall (baseline: `convert` of one of them)",
             f"{d['convert_s']:.2f} s", f"{d['target_s']:.2f} s", f"{d['ratio_to_convert']:.2f}", "<= 1.0",
             d["ratio_to_convert"] <= 1.0],
            ["same, peak RSS above `import torch` (baseline: one file's size)",
             f"{d['file_mib']:.0f} MiB", f"+{d['extra_peak_mib']:.0f} MiB", f"{d['peak_over_file']:.2f}",
             "<= 0.5", d["peak_over_file"] <= 0.5]]
    ins = results.get("inspect")
    if ins:
        for kind, label in (("pth", "I3D-R152 .pth"), ("safetensors", "SlowFast-R50 .safetensors")):
            r = ins[kind]
            # the limit, 1.5x python -c pass + the CLI's start-up (--help less python -c pass), is at
            # most 0.5x python -c pass over --help: held against the median of the paired differences,
            # which a drift of the machine between pairs does not move
            allowed = 0.5 * ins["python_s"]
            rows.append([f"inspect {label}, {r['file_mb']:.0f} MB, whole process (baseline: inflate3d --help; "
                         f"limit 1.5x python -c pass + the CLI's start-up: {1000 * r['difference_s']:.1f} ms "
                         f"over --help, paired, of {1000 * allowed:.1f} allowed)",
                         f"{r['baseline_s']:.3f} s", f"{r['target_s']:.3f} s", f"{r['ratio']:.2f}",
                         "<= limit and < 0.4 s, torch not imported",
                         r["difference_s"] <= allowed and r["target_s"] < 0.4 and not ins["imports_torch"]])
        f = ins["folder"]
        rows.append([f"inspect a folder of {f['files']} checkpoints ({f['mib'] / 1024:.1f} GiB; baseline: python -c pass)",
                     f"{f['baseline_s']:.2f} s", f"{f['target_s']:.2f} s", f"{f['ratio']:.1f}", "< 5 s",
                     f["target_s"] < 5])
    for name, r in results.get("scaling", {}).items():
        rows.append([f"scaling: inflate -> {name}, {r['output_mib']:.0f} MiB out (baseline: I/O floor)",
                     f"{r['baseline_s']:.2f} s", f"{r['target_s']:.2f} s", f"{r['ratio']:.2f}",
                     f"peak +{r['extra_peak_mib']:.0f} MiB", True])
    return rows


if __name__ == "__main__":
    main()
