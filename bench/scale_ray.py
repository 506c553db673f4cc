"""Rows/s of a scoring run's rows stage: the single-process pipeline vs 1 vs N Ray workers, in one run (prints a
table; not a test).

    .venv/bin/python -m bench.scale_ray [--rows 200] [--workers 1,2] [--model default] [--preset fast]
        [--batch-size 16] [--out bench/results/scale_ray.txt]

Each run scores the first --rows rows of sample_data/demo.jsonl from a fresh workspace with the same config, the way
`clear-studio score` does (the embedded model by default), every worker and the single process on one torch
thread. The rate is the rows stage's, taken between its first and its last committed batch: model loading, the
workers' start (imports, the model loaded once each) and the first batch are left out of the rate, and shown apart
as `start s`; the context and dataset stages run on the driver in every case and are not counted (calibration,
which scores synthetic rows on the driver, is left out of the runs). The scores of
every run are compared with the single process's (max |difference| over all signals and rows).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "sample_data" / "demo.jsonl"


class RowsClock:
    """A progress callback that times the rows stage: the first report, the first and the last commit."""

    def __init__(self):
        self.start = self.first = self.last = None
        self.first_done = self.last_done = 0

    def __call__(self, p) -> None:
        if p.stage != "rows":
            return
        now = time.perf_counter()
        if self.start is None:
            self.start, self.first_done = now, p.done
        elif self.first is None:
            self.first, self.first_done = now, p.done
        self.last, self.last_done = now, p.done

    def rate(self) -> float:
        rows = self.last_done - self.first_done
        return rows / (self.last - self.first) if self.first is not None and self.last > self.first else float("nan")


def score_once(data: Path, n_rows: int, args, backend, workers) -> dict:
    """One fresh scoring run of the first n_rows rows: its rows-stage rate, start time, wall time and scores."""
    from clear_core import pipeline
    from clear_core.config import preset_config
    from clear_core.formats import read_dataset
    from clear_core.store import Workspace

    # No calibration: it scores synthetic rows on the driver in every case, which is not what is measured here.
    config = preset_config(args.preset, model=args.model, batch_size=args.batch_size, limit=n_rows,
                           calibrate="none")
    with tempfile.TemporaryDirectory() as tmp, Workspace.open(Path(tmp) / "ws.duckdb") as ws:
        ws.add_dataset("demo", read_dataset(str(data)))
        clock, t0 = RowsClock(), time.perf_counter()
        run_id = pipeline.run_scoring(ws, "demo", config, backend=backend, progress=clock, workers=workers)
        wall = time.perf_counter() - t0
        scores = ws.scores_wide(run_id)
    return dict(rate=clock.rate(), start=clock.first - clock.start, wall=wall, scores=scores)


def max_diff(a, b) -> float:
    cols = [c for c in a.columns if c != "row_idx"]
    return float(np.nanmax(np.abs(a[cols].to_numpy(dtype=float) - b[cols].to_numpy(dtype=float))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--model", default="default")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]

    import ray
    import torch

    from clear_core.backends import load_backend
    from clear_core.distributed import Workers

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    backend = load_backend(args.model)  # the driver's: the single-process run, and every run's dataset stage
    ray.init(num_cpus=max(counts), include_dashboard=False, logging_level="ERROR")
    results = {"single process": score_once(DEMO, args.rows, args, backend, None)}
    for n in counts:
        results[f"{n} Ray worker{'s' * (n > 1)}"] = score_once(DEMO, args.rows, args, backend, Workers(n))
    ray.shutdown()

    single = results["single process"]
    one = results.get("1 Ray worker")
    lines = [f"{args.rows} rows of sample_data/demo.jsonl, model {backend.name}, preset {args.preset}, batch "
             f"{args.batch_size}, 1 torch thread per process, {os.cpu_count()} CPUs, load average "
             f"{os.getloadavg()[0]:.1f} at the end",
             "", "| run | rows/s | x single | x 1 worker | start s | wall s | max abs score diff |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        vs_one = f"{r['rate'] / one['rate']:.2f}" if one else "-"
        lines.append(f"| {name} | {r['rate']:.2f} | {r['rate'] / single['rate']:.2f} | {vs_one} | "
                     f"{r['start']:.1f} | {r['wall']:.1f} | {max_diff(r['scores'], single['scores']):.1e} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
