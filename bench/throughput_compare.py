"""End-to-end scoring throughput of this tree against an earlier commit, measured in one run (prints ratios).

    .venv/bin/python -m bench.throughput_compare --against REF [--rows 96] [--rounds 2] [--file sample_data/demo.jsonl]

The commit REF is checked out into a temporary git worktree (nothing in this tree changes). Each round scores the
same first --rows rows of --file with the default preset and the embedded default model, once with this tree's
code and once with REF's, each in a fresh subprocess on a fresh workspace with one thread, in alternating order
(A B, then B A, ...) so that a change in the machine's load hits both alike. Reported per version: the median over
rounds of the rows stage's rows/s, the seconds of the later stages (context, dataset: neighbour signals and the
label-free calibration) and the whole run's rows/s, then this tree's figures over REF's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Runs inside each subprocess with the version under test first on sys.path; uses only APIs both versions have.
DRIVER = r"""
import json, sys, time, tempfile, os
from clear_core.backends import load_backend
from clear_core.commands.scoring import ingest_if_file
from clear_core.config import preset_config
from clear_core import pipeline
from clear_core.store import Workspace
import torch
torch.set_num_threads(1)
src, n = sys.argv[1], int(sys.argv[2])
tmp = tempfile.mkdtemp()
part = os.path.join(tmp, "rows.jsonl")
with open(src, encoding="utf-8") as fh, open(part, "w", encoding="utf-8") as out:
    for i, line in enumerate(fh):
        if i >= n:
            break
        out.write(line)
backend = load_backend("default")
first = {}
def progress(p):
    first.setdefault(p.stage, time.perf_counter())
with Workspace.open(os.path.join(tmp, "ws.duckdb")) as ws:
    info = ingest_if_file(ws, part)
    t0 = time.perf_counter()
    pipeline.run_scoring(ws, info.id, preset_config("fast"), backend=backend, progress=progress)
    t1 = time.perf_counter()
rows_end = min([v for k, v in first.items() if k != "rows"] + [t1])
print("RESULT " + json.dumps({"rows_s": n / (rows_end - t0), "later_s": t1 - rows_end, "total_s": t1 - t0}))
"""


def worktree(ref: str, where: Path) -> Path:
    path = where / "ref"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True,
                   capture_output=True, text=True)
    return path


def measure(code_root: Path, file: Path, rows: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", DRIVER, str(file), str(rows)], cwd=code_root, env=env,
                         capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"scoring with the code at {code_root} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", required=True, help="the git ref to compare with (e.g. a commit hash)")
    ap.add_argument("--rows", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--file", type=Path, default=ROOT / "sample_data" / "demo.jsonl")
    args = ap.parse_args(argv)
    results: dict[str, list[dict]] = {"this tree": [], args.against: []}
    with tempfile.TemporaryDirectory() as tmp:
        ref_root = worktree(args.against, Path(tmp))
        try:
            roots = {"this tree": ROOT, args.against: ref_root}
            for r in range(args.rounds):
                order = list(roots) if r % 2 == 0 else list(roots)[::-1]
                for name in order:
                    res = measure(roots[name], args.file.resolve(), args.rows)
                    results[name].append(res)
                    print(f"round {r + 1} {name}: rows stage {res['rows_s']:.2f} rows/s, later stages "
                          f"{res['later_s']:.1f} s, whole run {res['total_s']:.1f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_root)],
                           capture_output=True)
    med = {name: {k: float(np.median([r[k] for r in rs])) for k in rs[0]} for name, rs in results.items()}
    print(f"\n{args.rows} rows of {args.file.name}, default preset, one thread, median of {args.rounds} rounds\n")
    print("| code | rows stage rows/s | later stages s | whole run rows/s |\n|---|---:|---:|---:|")
    for name, m in med.items():
        print(f"| {name} | {m['rows_s']:.2f} | {m['later_s']:.1f} | {args.rows / m['total_s']:.2f} |")
    a, b = med["this tree"], med[args.against]
    print(f"\nthis tree / {args.against}: rows stage {a['rows_s'] / b['rows_s']:.2f}x, "
          f"whole run {b['total_s'] / a['total_s']:.2f}x  (target >= 0.80)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
