"""Shared fixtures.

* `tiny_model_dir` (session): the tiny random Llama of `clear_core.backends.tiny`, built once per test session in a
  temp dir (~1 s, no download); pass it as `--model DIR` or to `load_backend(str(dir))`.
* `tiny_backend` (session): that model loaded once (CPU, fp32).
  Both set torch to one thread: on a small shared CPU box, OpenMP threads spin-waiting for cores that other
  processes hold made the tiny model's forwards ~70x slower than one thread (measured 7 s vs 0.1 s a batch).
* The whole session (and every subprocess it starts) scores in fp32 on the CPU: CLEAR_STUDIO_CPU_DTYPE=float32
  overrides the bf16 that `dtype="auto"` picks on CPUs with native bf16, so the comparisons with one-row-at-a-time
  references hold to fp32 tolerances.
* `write_rows(path, n, seed)`: writes a small Alpaca JSONL of short rows: mostly sentiment questions with one of
  three labels (the categorical path of the neighbors signal), some free-text ones.
* `small_workspace`: a fresh workspace file in tmp_path with 48 such rows ingested as dataset "small".
* `sample_workspace`: a fresh workspace with the project's `sample_data/demo.jsonl` ingested as "demo" (skipped
  while the sample data has not been generated).
* `run_then_stop(ws, dataset, config, backend, stage, after)`: an uninterrupted scoring run, then one stopped in
  `stage` once `after` rows are committed there: (full run id, stopped run id).
"""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "demo.jsonl"
os.environ["CLEAR_STUDIO_CPU_DTYPE"] = "float32"

_WORDS = {"positive": ["profit rose", "sales grew", "record earnings", "strong demand"],
          "negative": ["loss widened", "sales fell", "plant closed", "weak demand"],
          "neutral": ["board met", "report published", "office moved", "meeting held"]}
_FREE = [("Name a primary colour.", "Red is a primary colour."), ("What is 2 + 3?", "2 + 3 = 5."),
         ("Say hello in French.", "Bonjour."), ("What is the capital of France?", "Paris is the capital of France.")]


def write_rows(path: str | Path, n: int = 48, seed: int = 0, free_share: float = 0.25) -> Path:
    """An Alpaca JSONL of `n` short rows (ids r0, r1, ...); returns the path."""
    rng = random.Random(seed)
    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            if rng.random() < free_share:
                q, a = _FREE[rng.randrange(len(_FREE))]
                rec = {"id": f"r{i}", "instruction": q, "input": "", "output": a}
            else:
                label = rng.choice(sorted(_WORDS))
                text = f"Company {rng.randrange(100)}: {rng.choice(_WORDS[label])}."
                rec = {"id": f"r{i}", "instruction": "Sentiment of the sentence?", "input": text, "output": label}
            fh.write(json.dumps(rec) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    import torch

    from clear_core.backends.tiny import build_tiny_model

    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    from clear_core.backends import load_backend

    return load_backend(str(tiny_model_dir), device="cpu")


def _ingest(ws_path: Path, data: Path, name: str):
    from clear_core.formats import read_dataset
    from clear_core.store import Workspace

    ws = Workspace.open(ws_path)
    ws.add_dataset(name, read_dataset(str(data)))
    return ws


@pytest.fixture
def small_workspace(tmp_path):
    ws = _ingest(tmp_path / "ws.duckdb", write_rows(tmp_path / "small.jsonl"), "small")
    yield ws
    ws.close()


@pytest.fixture
def sample_workspace(tmp_path):
    if not SAMPLE.exists():
        pytest.skip("sample_data/demo.jsonl has not been generated")
    ws = _ingest(tmp_path / "ws.duckdb", SAMPLE, "demo")
    yield ws
    ws.close()


def run_then_stop(ws, dataset: str, config, backend, stage: str, after: int) -> tuple[int, int]:
    """An uninterrupted scoring run of `dataset`, then a run of the same config stopped (the app's stop button: a
    cancel event, checked between batches) once `stage` has `after` rows committed: (full run id, stopped run id)."""
    from clear_core import pipeline
    from clear_core.errors import Cancelled

    full = pipeline.run_scoring(ws, dataset, config, backend=backend)
    cancel = threading.Event()

    def stop(p):
        if p.stage == stage and p.done >= after:
            cancel.set()

    with pytest.raises(Cancelled):
        pipeline.run_scoring(ws, dataset, config, backend=backend, progress=stop, cancel=cancel)
    return full, ws.latest_run(ws.get_dataset(dataset).id).id
