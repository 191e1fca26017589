"""Copy benchmarks/results/latest.md into README.md's Benchmarks section (run after run.py)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTE = """
Where the time goes. `inflate` and `convert` are dominated by importing torch (about 1.4 s of
every process, baseline included) and by the I/O both sides do; inflate3d streams its output
tensor by tensor, so its peak memory stays within tens of MiB of the floor's. The native SlowFast
forward runs the same convolutions as pytorchvideo's (75% of the time in mkldnn convolutions, 8%
in the fast pathway's small-channel ones, for which PyTorch picks its non-mkldnn path at batch 1
in both), so the two are at parity and that row's ratio moves around 1.00 from run to run.
"""


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start = text.index("## Benchmarks")
    end = text.index("## Dependencies")
    table = (ROOT / "benchmarks" / "results" / "latest.md").read_text().strip()
    section = ("## Benchmarks\n\n`.venv/bin/python benchmarks/run.py` prints a table and writes "
               "`benchmarks/results/latest.json` (and `.md`). Each target is measured against a baseline "
               "run alternately in the same session; medians.\n\n" + table + "\n" + NOTE + "\n")
    readme.write_text(text[:start] + section + text[end:])


if __name__ == "__main__":
    main()
