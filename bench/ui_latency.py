"""UI latency on a 1,000,000-row workspace: what one threshold change costs (the store's band_counts query + the
plotly figures of the Explore page) and what the Review page's next-row load costs. Target: < 250 ms each.

    .venv/bin/python bench/ui_latency.py [--rows 1000000] [--repeats 5] [--workspace PATH]

`make_dataset` and `write_fake_run` are reused by the app's tests: they build a scored workspace through the store
API (random but plausible scores, some proposals), with no model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import plotly.io

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from clear_core.config import preset_config  # noqa: E402
from clear_core.formats import FormatSpec, ReadResult, Record  # noqa: E402
from clear_core.store import Workspace, long_scores  # noqa: E402

TARGET_MS = 250.0
SIGNALS = ("likelihood", "reflection", "neighbors")


def make_dataset(ws, name: str, n: int, seed: int = 0, extra: list[tuple[str, str]] | None = None):
    """Add an Alpaca dataset of `n` synthetic rows (plus `extra` (instruction, output) rows at the end)."""
    rng = np.random.default_rng(seed)
    words = np.array(["profit", "sales", "demand", "plant", "report", "board", "office", "record", "loss", "growth"])
    records = []
    rows = [(f"Sentiment of: {' '.join(rng.choice(words, 4))}?", str(rng.choice(["positive", "negative", "neutral"])))
            for _ in range(n)] + list(extra or [])
    for i, (question, answer) in enumerate(rows):
        obj = {"id": f"r{i}", "instruction": question, "input": "", "output": answer}
        records.append(Record(line=i + 1, row_id=f"r{i}", prompt=({"role": "user", "content": question},),
                              response=answer, original=json.dumps(obj, ensure_ascii=False)))
    spec = FormatSpec("jsonl", "alpaca", None, ("id", "instruction", "input", "output"))
    digest = hashlib.sha256(f"{name}:{n}:{seed}:{extra}".encode()).hexdigest()
    return ws.add_dataset(name, ReadResult(f"{name}.jsonl", spec, records, [], digest))


def write_fake_run(ws, dataset: str, seed: int = 0, proposal_share: float = 0.3, chunk: int = 250_000) -> int:
    """A finished scoring run with random signals and their mean as confidence, plus a correction run whose
    proposals cover `proposal_share` of the rows below the median; returns the scoring run id."""
    info = ws.get_dataset(dataset)
    n, rng = info.n_rows, np.random.default_rng(seed)
    run_id = ws.create_run(info.id, "score", preset_config("fast", model="tiny").to_json(), n)
    values = {s: rng.beta(4, 2, n) for s in SIGNALS}
    conf = np.mean(np.column_stack(list(values.values())), axis=1)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        ws.commit_batch(run_id, "rows", rows, scores=long_scores(rows, {s: v[rows] for s, v in values.items()}))
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        ws.commit_batch(run_id, "dataset", rows, scores=long_scores(rows, {"confidence": conf[rows]}))
    ws.update_run(run_id, status="done", weights={s: 1.0 for s in SIGNALS})
    flagged = np.flatnonzero(conf < np.median(conf))
    chosen = np.sort(rng.choice(flagged, int(len(flagged) * proposal_share), replace=False))
    if len(chosen):
        import pandas as pd

        judge = rng.uniform(0.3, 1.0, len(chosen))
        fix = ws.create_run(info.id, "correct", json.dumps({"score_run": run_id, "eta": 0.8}), len(chosen))
        ws.commit_batch(fix, "propose", chosen, proposals=pd.DataFrame({
            "row_idx": chosen, "candidate": [f"fixed answer {int(r)}" for r in chosen], "source": "icl",
            "judge_conf": judge, "confident": judge >= 0.8}))
        ws.update_run(fix, status="done")
    return run_id


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU time (this process, all threads) of `fn()` in ms over `repeats` calls (after one warm-up
    call), and its last result. On a shared machine the CPU time shows the work, the wall time its cost under load."""
    result = fn()
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    return statistics.median(walls), statistics.median(cpus), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workspace", help="reuse (or create) this workspace file instead of a temp one")
    args = parser.parse_args(argv)
    from ui import charts, queue  # the app's figure builders and review queue (no page is rendered here)

    tmp = None
    if args.workspace is None:
        tmp = tempfile.TemporaryDirectory()
        args.workspace = str(Path(tmp.name) / "bench.duckdb")
    ws = Workspace.open(args.workspace)
    name = f"bench{args.rows}"
    if not any(d.name == name for d in ws.list_datasets()):
        t0 = time.perf_counter()
        make_dataset(ws, name, args.rows)
        write_fake_run(ws, name)
        print(f"built {args.rows:,} scored rows in {time.perf_counter() - t0:.1f} s")
    info = ws.get_dataset(name)
    run = ws.latest_run(info.id, "score")
    t_drop, t_keep = ws.quantile(run.id, "confidence", [0.25, 0.5])
    signals = [s for s in ws.signals(run.id) if s != "confidence"]
    hists = {s: ws.histogram(run.id, s) for s in ["confidence", *signals]}  # cached by the page per run
    points = ws.scores_wide(run.id, [*signals[:2], "confidence"]).sample(20_000, random_state=0)  # cached too
    step = [0.0]

    def threshold_change():
        step[0] += 0.001  # a new slider position each time: nothing answers from a cache
        td, tk = t_drop - step[0], t_keep + step[0]
        counts = ws.band_counts(run.id, td, tk, 0.8)
        figs = [charts.histogram(hists["confidence"], "confidence", td, tk)]
        figs += [charts.histogram(hists[s], s) for s in signals]
        figs.append(charts.scatter(points, signals[0], signals[1], td, tk))
        return counts, [plotly.io.to_json(f, validate=False) for f in figs]  # as st.plotly_chart serialises

    def query_only():
        step[0] += 0.001
        return ws.band_counts(run.id, t_drop - step[0], t_keep + step[0], 0.8)

    filters = dict(band="flagged", t_drop=t_drop, t_keep=t_keep, signal_ranges=None, search=None,
                   has_proposal=None, undecided_only=True)
    session: dict = {}

    def window_read():  # what the Review page pays once per WINDOW rows (and on a filter change)
        session.clear()
        return queue.view(ws, info.id, run.id, filters, session)

    shown = [None]

    def next_row():  # one keystroke: the decision is committed, then the next row is shown
        if shown[0] is None:
            shown[0] = queue.view(ws, info.id, run.id, filters, session)["row"]
        ws.record_decisions(info.id, [int(shown[0]["row_idx"])], "keep", "bench")
        shown[0] = queue.view(ws, info.id, run.id, filters, session)["row"]
        return shown[0]

    results = [("threshold change: counts + 5 figures", *timed(threshold_change, args.repeats)),
               ("  of which band_counts query", *timed(query_only, args.repeats)),
               ("review next row: decision + next row", *timed(next_row, args.repeats)),
               (f"review window read (once per {queue.WINDOW} rows)", *timed(window_read, args.repeats))]
    print(f"\nUI latency on {info.n_rows:,} scored rows (median of {args.repeats}, target {TARGET_MS:.0f} ms)")
    for label, ms, cpu_ms, _ in results:
        print(f"  {label:<42} {ms:8.1f} ms wall {cpu_ms:8.1f} ms CPU   {ms / TARGET_MS:5.2f} x target")
    ws.close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
