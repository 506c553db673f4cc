"""`clear-studio score`: score every row of a dataset (a FILE is ingested first), resumably, with a progress bar.

Scores are in [0, 1], higher = more trustworthy. Running `score` again on a dataset whose last run with the same
settings did not finish (killed, stopped, failed) resumes that run instead of starting over; `--new` starts over.
`--workers N` scores the rows on N Ray workers (`clear_core.distributed`); `resume` takes the same flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

from ..config import PRESETS, preset_config
from ..errors import ClearError


def register(subparsers, default_workspace: str) -> None:
    p = subparsers.add_parser("score", help="score every row of a dataset (confidence in [0, 1], higher = better)",
                              description=__doc__.splitlines()[0])
    p.add_argument("dataset", metavar="NAME_OR_FILE", help="a dataset of the workspace, or a file to ingest first")
    p.add_argument("--model", default="default", help="default | tiny | a model dir | a .gguf file | a HF id | vllm:SPEC | http://HOST:PORT/v1")
    p.add_argument("--preset", default="fast", choices=sorted(PRESETS), help="signal set (default: fast)")
    p.add_argument("--workspace", default=default_workspace, help=f"workspace file (default: {default_workspace})")
    p.add_argument("--limit", type=positive_int, default=None, help="score only the first N rows")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="rows per batch (and per committed transaction)")
    p.add_argument("--name", default=None, help="dataset name when ingesting a FILE (default: the file's stem)")
    p.add_argument("--format", default="auto", help="input format when ingesting a FILE (default: auto)")
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="when ingesting a FILE: import the good rows and list the bad ones")
    p.add_argument("--calibrate", default=None, choices=("synthetic", "none"),
                   help="label-free weight calibration at the end of the run (default: synthetic)")
    p.add_argument("--new", action="store_true", help="start a new run even if an unfinished one matches")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_worker_args(p)
    p.set_defaults(func=run)


def extend(subparsers) -> None:
    """The worker flags on `resume` too (commands.curation registers it): a score run goes on over workers."""
    resume = subparsers.choices.get("resume")
    if resume is not None:
        add_worker_args(resume)
        resume.set_defaults(func=partial(resume_on_workers, plain=resume.get_default("func")))


def add_worker_args(p) -> None:
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="score the rows on N Ray workers (needs the extra: pip install \"clear-studio[ray]\")")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="a running Ray cluster (HOST:PORT, ray://HOST:10001 or auto; default: start a local one)")
    p.add_argument("--threads-per-worker", type=positive_int, default=1, metavar="T",
                   help="torch threads per worker (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                   help="GPUs per worker (default 0: CPU workers)")


def workers_from_args(args):
    """The `distributed.Workers` the flags ask for, or None; checks that Ray is there before any model loads."""
    if args.workers is None:
        if args.ray_address:
            raise ClearError("--ray-address needs --workers N (how many workers to start on the cluster)")
        return None
    from ..distributed import Workers, import_ray

    import_ray()
    return Workers(args.workers, address=args.ray_address, threads=args.threads_per_worker,
                   gpus=args.gpus_per_worker)


def positive_int(text: str) -> int:
    """argparse type of a count: a whole number >= 1 (a run of 0 or -5 rows would end "done" having done nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def run(args) -> int:
    from ..store import Workspace

    config = preset_config(args.preset, model=args.model, batch_size=args.batch_size, limit=args.limit,
                           calibrate=args.calibrate)
    workers = workers_from_args(args)
    with Workspace.open(args.workspace) as ws:
        info = ingest_if_file(ws, args.dataset, args.name, args.format, args.skip_bad_rows)
        unfinished = None if args.new else find_unfinished(ws, info.id, config)
        from .. import pipeline
        from ..backends import load_backend

        t0 = time.perf_counter()
        backend = load_backend(config.model)
        if not args.quiet:
            print(f"model {backend.name} ({backend.n_params / 1e6:.0f}M params) on {backend.device}, "
                  f"{backend.dtype}; preset {config.preset}", flush=True)
        with ProgressBar(args.quiet) as bar:
            if unfinished is not None:
                print(f"resuming run {unfinished.id} of dataset '{info.name}'", flush=True)
                run_id = pipeline.resume(ws, unfinished.id, backend=backend, progress=bar, workers=workers)
            else:
                run_id = pipeline.run_scoring(ws, info.id, config, backend=backend, progress=bar, workers=workers)
        print_summary(ws, run_id, time.perf_counter() - t0, bar.rows_here, bar.rows_per_s)
    return 0


def resume_on_workers(args, plain) -> int:
    """`resume RUN_ID --workers N`: a score run goes on with its rows stage on workers; without --workers, `plain`
    (the usual resume, any kind of run)."""
    workers = workers_from_args(args)
    if workers is None:
        return plain(args)
    from .. import pipeline
    from ..store import Workspace

    with Workspace.open(args.workspace) as ws:
        run = ws.get_run(args.run_id)
        if run.kind != "score":
            raise ClearError(f"--workers spreads the rows of a score run; run {run.id} is a {run.kind} run")
        t0 = time.perf_counter()
        print(f"resuming score run {run.id} ({run.status}, {run.n_done}/{run.n_total} done) on {workers.n} "
              "workers", flush=True)
        with ProgressBar(args.quiet) as bar:
            pipeline.resume(ws, run.id, progress=bar, workers=workers)
        print_summary(ws, run.id, time.perf_counter() - t0, bar.rows_here, bar.rows_per_s)
    return 0


def ingest_if_file(ws, name_or_file: str, name: str | None = None, fmt: str = "auto", skip_bad_rows: bool = False):
    """The dataset named `name_or_file`, or the file of that path ingested (again a no-op when unchanged)."""
    path = Path(name_or_file)
    if path.is_file():
        from ..formats import read_dataset

        result = read_dataset(str(path), format=fmt, skip_bad_rows=skip_bad_rows)
        for error in result.errors:
            print(f"skipped {error.describe()}", file=sys.stderr)
        info = ws.add_dataset(name or path.stem, result)
        print(f"dataset '{info.name}': {info.n_rows} rows from {path}", flush=True)
        return info
    return ws.get_dataset(name_or_file)


def find_unfinished(ws, dataset_id: int, config):
    """The latest unfinished score run of the dataset with exactly these settings, or None."""
    run = ws.latest_run(dataset_id, kind="score")
    if run is None or run.status == "done":
        return None
    stored = run.config
    return run if stored == json.loads(config.to_json()) else None


class ProgressBar:
    """A tqdm bar fed by pipeline Progress callbacks (one bar per stage); prints the run id once it starts."""

    def __init__(self, quiet: bool = False, unit: str = "row"):
        self.quiet, self.unit = quiet, unit
        self.bar, self.stage, self.announced, self.rows_here, self._last = None, None, False, 0, 0
        self.rows_per_s = 0.0  # this session's rows stage (model loading excluded)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, p) -> None:
        if not self.announced:
            print(f"run {p.run_id}: {p.done}/{p.total} rows already done", flush=True)
            self.announced = True
        if p.stage != self.stage:
            if self.bar is not None:
                self.bar.close()
            self.stage, self._last = p.stage, p.done
            if not self.quiet:
                from tqdm import tqdm
                self.bar = tqdm(total=p.total, initial=p.done, desc=p.stage, unit=self.unit, dynamic_ncols=True)
            return
        if p.stage == "rows":
            self.rows_here += max(0, p.done - self._last)
            self.rows_per_s = p.rows_per_s
        if self.bar is not None:
            self.bar.update(p.done - self._last)
        self._last = p.done


def print_summary(ws, run_id: int, seconds: float, rows_here: int, rows_per_s: float) -> None:
    run = ws.get_run(run_id)
    failed = len(ws.row_errors(run_id, "rows"))
    print(f"run {run_id}: {run.status}, {run.n_total} rows ({failed} failed); this session: {rows_here} rows scored "
          f"at {rows_per_s:.1f} rows/s, {seconds:.1f} s in all (model loading included)")
    q = ws.quantile(run_id, "confidence", [0.1, 0.25, 0.5, 0.75, 0.9])
    if q is not None:
        print("confidence quantiles (10/25/50/75/90 %): " + " / ".join(f"{v:.3f}" for v in q))
    if run.weights:
        print("weights: " + ", ".join(f"{k}={v:.2f}" for k, v in sorted(run.weights.items())))
