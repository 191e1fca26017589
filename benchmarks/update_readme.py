"""Put the table of benchmarks/results/latest.md (run.py's last run) into README.md's Benchmarks
section, in place of the table there. Only the table: what the numbers mean is written by hand,
after reading them."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def replace_table(readme: str, table: str) -> str:
    """``readme`` with the block that starts at the Benchmarks section's "inflate3d benchmarks, "
    title line and ends after its last table row replaced by ``table``."""
    section = readme.index("## Benchmarks")
    following = readme.index("\n## ", section)
    start = readme.find("\ninflate3d benchmarks, ", section) + 1
    end = readme.find("\n\n", readme.find("\n|", start))
    if not section < start < end < following:
        raise SystemExit("README.md: the Benchmarks section has no table where expected")
    return readme[:start] + table.strip() + readme[end:]


def main() -> None:
    readme = ROOT / "README.md"
    table = (ROOT / "benchmarks" / "results" / "latest.md").read_text()
    readme.write_text(replace_table(readme.read_text(), table))
    print(f"{readme}: benchmark table replaced; now check the prose around it against the numbers")


if __name__ == "__main__":
    main()
