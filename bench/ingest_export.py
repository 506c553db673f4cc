"""Ingest and export of a 1,000,000-row Alpaca JSONL file. Target: each under 20 s.

    .venv/bin/python bench/ingest_export.py [--rows 1000000] [--keep DIR]

Generates the file in a temp dir, ingests it into a fresh workspace (formats.read_dataset, then
Workspace.add_dataset: timed apart and together), records a few bulk decisions (1 % drop, 1 % edit) so the curated
export has work to do, exports the curated rows in the same format, checks that every untouched line came out byte
for byte, and prints times, rows/s, the ratio to the target and the process's peak memory (ru_maxrss) after
each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from clear_core.export import export_dataset  # noqa: E402
from clear_core.formats import read_dataset  # noqa: E402
from clear_core.store import Workspace  # noqa: E402

TARGET_S = 20.0
_TOPICS = ["the French Revolution", "photosynthesis", "binary search", "the water cycle", "supply and demand",
           "black holes", "the immune system", "neural networks", "plate tectonics", "Shakespeare's sonnets"]
_ASKS = ["Explain {t} in two sentences.", "Give one fact about {t}.", "Why does {t} matter?",
         "Summarise {t} for a child.", "What is a common misconception about {t}?"]


def write_alpaca(path: Path, n: int, seed: int = 0) -> int:
    """n Alpaca rows of mixed length (a third with an input, some non-ASCII); returns the file size in bytes."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            topic = rng.choice(_TOPICS)
            row = {"id": f"row-{i}", "instruction": rng.choice(_ASKS).format(t=topic),
                   "input": f"Context {i}: notes on {topic} (café, naïve)." if i % 3 == 0 else "",
                   "output": f"{topic.capitalize()} is explained here, answer {i}. " * rng.randint(1, 4)}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path.stat().st_size


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class Timer:
    """Wall time and this process's CPU time (all threads) of a phase: on a shared machine the CPU time shows the
    work done, the wall time what it cost under the machine's load."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def line(label: str, t: Timer, rows: int) -> str:
    return (f"{label:<22} {t.wall:7.2f} s wall  {t.cpu:6.2f} s CPU  {rows / t.wall:>9,.0f} rows/s  "
            f"{t.wall / TARGET_S:5.2f} x target  peak RSS {peak_mb():,.0f} MB  (load {os.getloadavg()[0]:.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", default=None, help="work in this folder and keep the files (default: a temp dir)")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="clear_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    src, ws_path, out = folder / "alpaca.jsonl", folder / "bench.duckdb", folder / "curated.jsonl"
    for stale in (ws_path, Path(str(ws_path) + ".wal")):
        stale.unlink(missing_ok=True)
    n = args.rows

    t = time.perf_counter()
    size = write_alpaca(src, n)
    print(f"generated {n:,} rows ({size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s -> {src}")
    print(f"CPU cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")

    with Timer() as total:
        with Timer() as t_read:
            result = read_dataset(str(src))
        print(line("ingest: read", t_read, n))
        ws = Workspace.open(ws_path)
        with Timer() as t_insert:
            info = ws.add_dataset("bench", result)
        print(line("ingest: insert", t_insert, n))
    print(line("ingest: total", total, n))
    del result
    assert info.n_rows == n

    t = time.perf_counter()
    ws.record_decisions(info.id, range(0, n, 100), "drop", "bench")
    ws.record_decisions(info.id, range(50, n, 100), "edit", "bench", new_text="An edited answer.")
    print(f"decisions: {2 * len(range(0, n, 100)):,} rows in 2 bulk actions in {time.perf_counter() - t:.2f} s")

    with Timer() as t_export:
        manifest = export_dataset(ws, "bench", out)
    print(line("export: curated jsonl", t_export, n))
    ws.close()

    counts = manifest["counts"]
    with src.open(encoding="utf-8") as a, out.open(encoding="utf-8") as b:
        kept = (l for i, l in enumerate(a) if i % 100 != 0)
        mismatched = sum(1 for i, (x, y) in enumerate(zip(kept, b)) if i % 99 != 49 and x != y)
    print(f"written {counts['written']:,} of {counts['input']:,} (dropped {counts['dropped']:,}, edited "
          f"{counts['edited']:,}); untouched lines differing from the input: {mismatched}")
    print(f"workspace file: {ws_path.stat().st_size / 1e6:.0f} MB")
    ok = total.wall < TARGET_S and t_export.wall < TARGET_S and mismatched == 0
    print(f"RESULT: ingest {total.wall:.1f} s wall / {total.cpu:.1f} s CPU ({total.wall / TARGET_S:.2f} x 20 s), "
          f"export {t_export.wall:.1f} s wall / {t_export.cpu:.1f} s CPU ({t_export.wall / TARGET_S:.2f} x 20 s): "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
