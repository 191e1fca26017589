"""inflate3d benchmarks: whole processes and forwards, each against a baseline measured in the same run.

    .venv/bin/python benchmarks/run.py [--repeats N] [--out benchmarks/results/latest.json]

Pairs run alternately (baseline, target, baseline, target, ...) so machine drift cancels; every
figure is a median, every ratio the median of per-pair ratios. Weights are seeded torchvision
models written to a temporary folder; nothing is downloaded. Peak memory is the child's own
ru_maxrss (os.wait4), wall time is measured around the child.
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


def run_process(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
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


def floor_script(src: Path, out: Path, nbytes: int) -> list[str]:
    """The I/O floor: import torch and safetensors, load the 2D file, write a file of the output's size."""
    code = (f"import torch, safetensors.torch as st\nsd = st.load_file({str(src)!r})\n"
            f"with open({str(out)!r}, 'wb') as f:\n    f.write(bytes({nbytes}))\n    f.flush()\n"
            f"    import os; os.fsync(f.fileno())")
    return [PY, "-c", code]


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

    res = alternate(lambda: run_process(floor_script(src, floor_out, size)), lambda: run_process(cmd),
                    repeats, before=clean)
    res["output_mib"] = size / 2**20
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
    baseline = [PY, "-c", f"import os, torch, safetensors.torch as st\nst.save_file(st.load_file({str(src)!r}), "
                f"{str(base_out)!r})\nfd = os.open({str(base_out)!r}, os.O_RDONLY)\nos.fsync(fd)"]  # durable, as ours
    target = INFLATE3D + ["convert", str(src), "-o", str(out)]

    def clean():
        for p in (out, base_out):
            p.unlink(missing_ok=True)

    res = alternate(lambda: run_process(baseline), lambda: run_process(target), repeats, before=clean)
    res["extra_peak_mib"] = res["target_peak_mib"] - res["baseline_peak_mib"]
    return res


def bench_diff(tmp: Path, src: Path, repeats: int) -> dict:
    """diff two SlowFast-R50 files: wall time, and peak RSS above an interpreter that imports torch."""
    a, b = tmp / "diff_a.safetensors", tmp / "diff_b.safetensors"
    for out, seed in ((a, 0), (b, 1)):
        out.unlink(missing_ok=True)
        run_process(INFLATE3D + ["inflate", str(src), "--arch", "slowfast_r50_4x16", "--seed", str(seed),
                                 "-o", str(out), "--no-verify"])
    size_mib = a.stat().st_size / 2**20
    baseline = [PY, "-c", "import torch, safetensors.torch"]
    target = [PY, "-c", "import sys; from inflate3d.cli import main; sys.argv = ['inflate3d', 'diff', "
              f"{str(a)!r}, {str(b)!r}]\ntry:\n    main()\nexcept SystemExit as e:\n    assert e.code == 1"]
    res = alternate(lambda: run_process(baseline), lambda: run_process(target), repeats)
    res["file_mib"] = size_mib
    res["extra_peak_mib"] = res["target_peak_mib"] - res["baseline_peak_mib"]
    res["peak_over_file"] = res["extra_peak_mib"] / size_mib
    return res


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
        results["forward"] = bench_forward(args.repeats)
        results["verify_cost"]["ratio_to_forward"] = results["verify_cost"]["verify_s"] / results["forward"]["baseline_s"]
        results["help"] = bench_help(args.repeats)
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
    inf, ver, fwd, hlp, cvt, dif = (results[k] for k in ("inflate_slowfast", "verify_cost", "forward", "help",
                                                          "convert", "diff"))
    rows = [
        ["inflate R50 -> SlowFast-R50 4x16, --no-verify, wall (baseline: I/O floor)",
         f"{inf['baseline_s']:.2f} s", f"{inf['target_s']:.2f} s", f"{inf['ratio']:.2f}", "<= 1.10",
         inf["ratio"] <= 1.10],
        ["same, peak RSS (baseline: I/O floor)", f"{inf['baseline_peak_mib']:.0f} MiB",
         f"{inf['target_peak_mib']:.0f} MiB", f"+{inf['extra_peak_mib']:.0f} MiB", "<= +150 MiB",
         inf["extra_peak_mib"] <= 150],
        ["verification cost of SlowFast-R50 (baseline: 1 pytorchvideo SlowFast forward, 32x224x224)",
         f"{fwd['baseline_s']:.2f} s", f"{ver['verify_s']:.2f} s", f"{ver['ratio_to_forward']:.2f}", "<= 3",
         ver["ratio_to_forward"] <= 3],
        ["  for reference: the whole inflate process with verification (baseline: that forward)",
         f"{fwd['baseline_s']:.2f} s", f"{ver['target_s']:.2f} s", f"{ver['target_s'] / fwd['baseline_s']:.2f}",
         "-", True],
        ["convert pytorchvideo SlowFast-R50 -> mmaction2, wall (baseline: load + save the same bytes)",
         f"{cvt['baseline_s']:.2f} s", f"{cvt['target_s']:.2f} s", f"{cvt['ratio']:.2f}", "<= 1.15",
         cvt["ratio"] <= 1.15],
        ["diff two SlowFast-R50 files, peak RSS above `import torch` (baseline: one file's size)",
         f"{dif['file_mib']:.0f} MiB", f"+{dif['extra_peak_mib']:.0f} MiB, {dif['target_s']:.2f} s",
         f"{dif['peak_over_file']:.2f}", "<= 1.5", dif["peak_over_file"] <= 1.5],
        ["forward slowfast_r50_8x8, 1x3x32x224x224, 2 threads (baseline: pytorchvideo create_slowfast)",
         f"{fwd['baseline_s']:.2f} s", f"{fwd['target_s']:.2f} s", f"{fwd['ratio']:.2f}", "<= 1.0",
         fwd["ratio"] <= 1.0],
        ["inflate3d --help (baseline: python -c pass)", f"{hlp['baseline_s']:.2f} s",
         f"{hlp['target_s']:.2f} s", f"{hlp['ratio']:.2f}", "<= 0.3 s, torch not imported",
         hlp["target_s"] <= 0.3 and not hlp["imports_torch"]],
    ]
    for name, r in results.get("scaling", {}).items():
        rows.append([f"scaling: inflate -> {name}, {r['output_mib']:.0f} MiB out (baseline: I/O floor)",
                     f"{r['baseline_s']:.2f} s", f"{r['target_s']:.2f} s", f"{r['ratio']:.2f}",
                     f"peak +{r['extra_peak_mib']:.0f} MiB", True])
    return rows


if __name__ == "__main__":
    main()
