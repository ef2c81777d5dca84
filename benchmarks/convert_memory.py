"""Measure the peak memory and speed of converting synthetic Criteo TSV files of growing length.

For every requested line count the script writes a Criteo-style TSV (label, 13 integers, 26 hexadecimal categorical
values, some fields empty). It then runs ``esd-gym data convert`` on it in a child process and reads the child's
peak resident set size from ``os.wait4``. The files are generated in another child process, because a child's peak
includes the memory that it shares with this process between fork and exec.

The categorical values are drawn with the project's Zipf generator from tables of at most ``--max-rows`` rows, so the
vocabularies stop growing early and any growth of the peak with the file length would come from the conversion.

Usage: python benchmarks/convert_memory.py [--lines 500000 2000000] [--max-rows 10000] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MISSING_INTEGER = 0.2
MISSING_CATEGORICAL = 0.05


def write_criteo_tsv(path: Path, lines: int, max_rows: int, seed: int = 0) -> None:
    """Write ``lines`` Criteo-style lines; categorical values are Zipf ids of tables capped at ``max_rows`` rows."""
    import numpy as np

    from esd_gym.workload.synthetic import CRITEO_KAGGLE_CARDINALITIES, SyntheticConfig, iter_synthetic_chunks

    cardinalities = tuple(min(rows, max_rows) for rows in CRITEO_KAGGLE_CARDINALITIES)
    config = SyntheticConfig(cardinalities=cardinalities, seed=seed)
    rng = np.random.default_rng(seed)
    offsets = config.table_offsets[:-1]
    with open(path, "w") as handle:
        for _, ids, _, _ in iter_synthetic_chunks(lines, config):
            count = len(ids) // 26
            local = ids.reshape(count, 26) - offsets
            categorical = np.char.mod("%08x", local).astype(object)
            categorical[rng.random((count, 26)) < MISSING_CATEGORICAL] = ""
            integers = rng.geometric(0.05, size=(count, 13)).astype(str).astype(object)
            integers[rng.random((count, 13)) < MISSING_INTEGER] = ""
            labels = (rng.random(count) < 0.25).astype(int).astype(str)
            rows = np.column_stack([labels.astype(object), integers, categorical]).tolist()
            handle.write("".join("\t".join(row) + "\n" for row in rows))


def convert_in_child(source: Path, output: Path) -> tuple[float, float, str]:
    """Run ``esd-gym data convert`` in a child process; return (peak RSS in MiB, wall seconds, its summary)."""
    command = [sys.executable, "-m", "experiments.cli", "data", "convert", str(source), "-o", str(output),
               "--format", "criteo"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output_text = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"conversion of {source} failed with exit status {child.returncode}")
    # On Linux ru_maxrss is in KiB.
    return usage.ru_maxrss / 1024, seconds, output_text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[500_000, 2_000_000], help="line counts to test")
    parser.add_argument("--max-rows", type=int, default=10_000, help="rows per categorical table (default 10000)")
    parser.add_argument("--work-dir", type=Path, help="directory for the generated files (default: a temporary one)")
    parser.add_argument("--generate", type=Path, metavar="TSV", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate is not None:
        write_criteo_tsv(args.generate, args.lines[0], args.max_rows)
        return 0

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work_dir:
        print("| lines | TSV size (MB) | trace size (MB) | peak RSS of the conversion (MiB) | rows/s |")
        print("|---:|---:|---:|---:|---:|")
        for lines in args.lines:
            source = Path(work_dir) / f"criteo_{lines}.tsv"
            output = Path(work_dir) / f"criteo_{lines}.npz"
            generate = [sys.executable, __file__, "--generate", str(source), "--lines", str(lines),
                        "--max-rows", str(args.max_rows)]
            subprocess.run(generate, check=True)
            peak, seconds, summary = convert_in_child(source, output)
            rate = re.search(r"([\d,]+) rows/s", summary)
            print(
                f"| {lines:,} | {source.stat().st_size / 1e6:,.0f} | {output.stat().st_size / 1e6:,.0f} "
                f"| {peak:,.0f} | {rate.group(1) if rate else '?'} |",
                flush=True,
            )
            source.unlink()
            output.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
