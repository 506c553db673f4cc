"""The dataset stage at scale: time and peak memory on synthetic workspaces of 10k, 100k and 1M rows.

    python -m bench.scale [--sizes 10000,100000,1000000] [--workdir /tmp/clear_scale] [--model default]
    python -m bench.scale --knn [--knn-sizes 5000,10000,20000,50000,100000]

Each size gets a workspace built in its own process (not measured): a dataset of synthetic rows (a share of them
answered with one of three labels, the rest with free text), a score run whose rows stage is committed with
synthetic row signals and 576-d prompt / response embeddings (the default model's hidden size) drawn around
clusters in a low-rank subspace, as real prompt embeddings are. A second process then runs the pipeline's own
dataset stage on it (`pipeline._dataset_stage`: embeddings read from the workspace, every dataset signal of the
`fast` preset, the label-free calibration on `--model`, confidence, the commit) and reports its wall time, its CPU
time and its peak resident memory (ru_maxrss of that process: numpy and native libraries included), with the time
of each step from the stage's progress reports. The table gives the growth factor per 10x rows.

--knn measures the neighbour search on the same kind of embeddings: the exact search against the approximate
index (build + the all-rows self-search, k = 10) and the index's recall@10 (a returned row counts when its exact
similarity reaches the k-th exact similarity), which gives `knn.KnnConfig.exact_max_rows`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DIM = 576  # SmolLM2-135M's hidden size: the default model's embeddings
LABELS = ("positive", "negative", "neutral")
WORDS = ("the model reads each row and scores how well its answer fits the prompt while reviewers check the "
         "flagged ones before export so that a curated dataset keeps only trustworthy examples").split()
CHUNK = 50_000


def embeddings(n: int, seed: int, start: int = 0, stop: int | None = None,
               dim: int = DIM) -> tuple[np.ndarray, np.ndarray]:
    """Rows start..stop of n synthetic (prompt, response) embeddings: cluster centres in a 48-d subspace, spread
    within it and isotropic noise; a response sits near its prompt's cluster. The clusters depend on (n, seed),
    the rows on the chunk's start too, so a large set is drawn one chunk at a time."""
    stop = n if stop is None else stop
    base = np.random.default_rng(seed)
    basis = base.normal(size=(48, dim)).astype(np.float32)
    n_clusters = max(8, n // 200)
    centres = base.normal(size=(n_clusters, 48)).astype(np.float32)
    rng = np.random.default_rng([seed, start])
    cluster = rng.integers(0, n_clusters, stop - start)
    out = []
    for spread in (0.6, 0.8):
        z = centres[cluster] + spread * rng.normal(size=(stop - start, 48)).astype(np.float32)
        out.append(z @ basis + 2.0 * rng.normal(size=(stop - start, dim)).astype(np.float32))
    return out[0], out[1]


def texts(start: int, stop: int, seed: int) -> tuple[list[str], list[str]]:
    """Prompts and responses of rows start..stop: 40 % answered with a label, the rest with 8-30 words."""
    rng = np.random.default_rng([seed, start, 1])
    prompts, responses = [], []
    for i in range(start, stop):
        if rng.random() < 0.4:
            prompts.append(f"Classify the sentiment of review {i}: {' '.join(rng.choice(WORDS, 12))}")
            responses.append(str(rng.choice(LABELS)))
        else:
            prompts.append(f"Explain item {i}: {' '.join(rng.choice(WORDS, 10))}?")
            responses.append(" ".join(rng.choice(WORDS, int(rng.integers(8, 31)))).capitalize() + ".")
    return prompts, responses


def prepare(n: int, path: Path, seed: int = 0, dim: int = DIM) -> None:
    """A workspace at `path` with a synthetic dataset of n rows and a score run whose rows stage is done
    (embeddings of `dim`: the calibration's model must give the same)."""
    from clear_core.config import PRESETS, ScoreConfig
    from clear_core.formats.spec import FormatSpec, ReadResult, Record
    from clear_core.signals import of_kind
    from clear_core.store import Workspace
    from clear_core.store.runs import long_scores

    path.unlink(missing_ok=True)
    ws = Workspace.open(str(path))
    records = []
    for s in range(0, n, CHUNK):
        prompts, responses = texts(s, min(n, s + CHUNK), seed)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            row = json.dumps({"prompt": p, "response": r})
            records.append(Record(s + i + 1, f"r{s + i}", ({"role": "user", "content": p},), r, row))
    spec = FormatSpec("jsonl", "columns", {"prompt": "prompt", "response": "response"}, ("prompt", "response"))
    info = ws.add_dataset("scale", ReadResult(str(path), spec, records, [], f"synthetic-{n}-{seed}"))
    del records
    config = ScoreConfig(preset="fast", **PRESETS["fast"])
    run_id = ws.create_run(info.id, "score", config.to_json(), n)
    row_signals = [s for s in config.signals if s in of_kind("row")]
    for s in range(0, n, CHUNK):
        rows = np.arange(s, min(n, s + CHUNK))
        rng = np.random.default_rng([seed, s, 2])
        raw = {name: np.log(rng.uniform(0.05, 1.0, len(rows))) for name in row_signals}
        pe, re_ = embeddings(n, seed, s, s + len(rows), dim)
        ws.commit_batch(run_id, "rows", rows, scores=long_scores(rows, {k: np.exp(v) for k, v in raw.items()}, raw),
                        embeddings={"prompt": pe, "response": re_})
    ws.close()


def measure(path: Path, model: str) -> dict:
    """Run the dataset stage of the workspace's run in this process; its time, CPU time, peak memory and steps."""
    from clear_core import pipeline
    from clear_core.backends import load_backend
    from clear_core.config import ScoreConfig
    from clear_core.store import Workspace

    ws = Workspace.open(str(path))
    run = ws.list_runs()[0]
    config = ScoreConfig.from_dict(run.config)
    if model == "none":  # the stage without calibration: its fixed cost (the model on ~500 rows) left out
        config, backend = dataclasses.replace(config, calibrate="none"), None
    else:
        backend = load_backend(model)
    steps: list[tuple[str, float, float]] = []  # (label, start, the process's peak memory so far in GiB)

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20

    def progress(p) -> None:
        # one label per step whatever the size ("fitting neighbors over 10,000 rows (0 of 8 ...)" -> "fitting neighbors")
        label = p.label.split(":")[0] if p.stage == "calibration" else re.sub(r" over [\d,]+ rows.*", "", p.label)
        if not steps or steps[-1][0] != label:
            steps.append((label, time.perf_counter(), peak()))

    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    pipeline._dataset_stage(ws, run, config, backend, progress)
    wall, cpu1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    done = ws.scores_wide(run.id, ["confidence"])
    assert len(done) == run.n_total and done["confidence"].notna().all(), "the stage left rows without confidence"
    ends = [(t, m) for _, t, m in steps[1:]] + [(t0 + wall, peak())]
    return dict(n=run.n_total, wall_s=wall, cpu_s=(cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
                peak_gib=cpu1.ru_maxrss / 2 ** 20, load=os.getloadavg()[0],
                steps=[(label, end - start, mem) for (label, start, _), (end, mem) in zip(steps, ends)])


def measure_signals(n: int, seed: int = 0) -> dict:
    """The dataset signals alone (`signals.dataset.fit` with the fast preset's dataset signals, as the stage calls
    it) on n synthetic rows held in this process: no workspace read, no calibration, no commit."""
    from clear_core.config import PRESETS
    from clear_core.signals import dataset, of_kind

    pe, re_ = np.empty((n, DIM), np.float32), np.empty((n, DIM), np.float32)
    prompts, responses = [], []
    for s in range(0, n, CHUNK):
        pe[s:s + CHUNK], re_[s:s + CHUNK] = embeddings(n, seed, s, min(n, s + CHUNK))
        p, r = texts(s, min(n, s + CHUNK), seed)
        prompts += [({"role": "user", "content": t},) for t in p]
        responses += r
    raw = {"likelihood": np.log(np.random.default_rng(seed).uniform(0.05, 1.0, n))}
    wanted = of_kind("dataset", PRESETS["fast"]["signals"])
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fitted = dataset.fit(wanted, dataset.Rows(pe, re_, prompts, responses, raw))
    wall, cpu1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    assert set(fitted.fits) == set(wanted), sorted(set(wanted) - set(fitted.fits))
    return dict(n=n, wall_s=wall, cpu_s=(cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
                peak_gib=cpu1.ru_maxrss / 2 ** 20, load=os.getloadavg()[0], steps=[])


def _child(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "bench.scale", *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"bench.scale {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def table(results: list[dict]) -> str:
    lines = ["| rows | wall s | CPU s | peak GiB | wall growth | CPU growth | memory growth | load avg |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    prev = None
    for r in results:
        def grow(key: str) -> str:
            return f"{r[key] / prev[key]:.1f}x" if prev else ""
        lines.append(f"| {r['n']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_gib']:.2f} | {grow('wall_s')} | "
                     f"{grow('cpu_s')} | {grow('peak_gib')} | {r['load']:.1f} |")
        prev = r
    return "\n".join(lines)


def steps_table(results: list[dict]) -> str:
    """Seconds per step, and the process's peak memory by the end of it (GiB), per size."""
    lines = ["| step | " + " | ".join(f"{r['n']:,} rows: s / peak GiB" for r in results) + " |",
             "|---|" + "---:|" * len(results)]
    names = [step[0] for step in results[-1]["steps"]]
    for name in names:
        cells = [next((f"{s[1]:.1f} / {s[2]:.2f}" for s in r["steps"] if s[0] == name), "") for r in results]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def knn_bench(sizes: list[int], k: int = 10, n_queries: int = 2000) -> str:
    """Exact vs approximate search over synthetic embeddings of each size; the exact time of all rows is
    extrapolated from n_queries queries (it is linear in the queries)."""
    from clear_core.signals import knn

    lines = ["| rows | exact all-rows s | index build s | index all-rows s | ANN / exact | recall@10 |",
             "|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        unit = knn.centred_unit(embeddings(n, 0)[0])[0]
        queries = np.sort(np.random.default_rng(1).choice(n, min(n, n_queries), replace=False))
        t = time.perf_counter()
        exact_idx, exact_sim = knn._exact(unit[queries], unit, k, queries)
        exact_s = (time.perf_counter() - t) * n / len(queries)
        t = time.perf_counter()
        index = knn._Index(unit, knn.KnnConfig(exact_max_rows=0))
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        _, sims = index.nearest(unit, k, np.arange(n))
        search_s = time.perf_counter() - t
        recall = float(np.mean(sims[queries] >= exact_sim[:, -1:] - 1e-6))
        lines.append(f"| {n:,} | {exact_s:.1f} | {build_s:.1f} | {search_s:.1f} | "
                     f"{(build_s + search_s) / exact_s:.2f} | {recall:.4f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--workdir", default="/tmp/clear_scale")
    ap.add_argument("--model", default="default",
                    help="backend of the calibration's synthetic rows; 'none' leaves the calibration out")
    ap.add_argument("--knn", action="store_true", help="measure the neighbour search instead")
    ap.add_argument("--knn-sizes", default="5000,10000,20000,50000,100000")
    ap.add_argument("--signals-only", action="store_true",
                    help="time signals.dataset.fit alone on rows held in memory (no workspace, no calibration)")
    ap.add_argument("--prepare", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    if args.prepare:
        return prepare(args.prepare, work / f"scale-{args.prepare}.db")
    if args.measure:
        out = measure_signals(args.measure) if args.signals_only else measure(work / f"scale-{args.measure}.db",
                                                                              args.model)
        return print(json.dumps(out))
    if args.knn:
        return print(knn_bench([int(s) for s in args.knn_sizes.split(",")]))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        if args.signals_only:
            results.append(json.loads(_child("--measure", str(n), "--signals-only")))
        else:
            t = time.perf_counter()
            _child("--prepare", str(n), "--workdir", str(work))
            print(f"{n:,} rows: workspace built in {time.perf_counter() - t:.0f} s", flush=True)
            results.append(json.loads(_child("--measure", str(n), "--workdir", str(work), "--model", args.model)))
        print(json.dumps(results[-1]), flush=True)
        (work / f"scale-{n}.db").unlink(missing_ok=True)
    print(table(results))
    if not args.signals_only:
        print()
        print(steps_table(results))


if __name__ == "__main__":
    main()
