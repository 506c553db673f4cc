"""The embedded SmolLM2-135M-Instruct: it loads from its cached safetensors copy, and its likelihood ranks right
answers to questions it knows above wrong ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clear_core.config import preset_config
from clear_core.scoring import Row, score_batch

pytestmark = pytest.mark.model

# (question, right, wrong): facts the 135M model knows
FACTS = [
    ("What is the capital of France?", "Paris", "Berlin"),
    ("What is the capital of Japan?", "Tokyo", "Madrid"),
    ("What is the capital of Italy?", "Rome", "London"),
    ("What is the capital of Germany?", "Berlin", "Paris"),
    ("What is 2+3?", "5", "9"),
]


@pytest.fixture(scope="module")
def default_backend():
    from clear_core.backends import embedded, gguf_file, load_backend

    backend = load_backend("default", device="cpu")
    # the copy is named after the GGUF file's content, so another file of the same name cannot reuse it
    cached = embedded.default_cache_root() / f"{embedded.NAME}-{gguf_file.content_key(embedded.gguf_path())}"
    return backend, cached


def test_default_model_loads_from_its_safetensors_cache(default_backend):
    from clear_core.backends import embedded

    backend, cached = default_backend
    assert backend.name == embedded.NAME and 130e6 < backend.n_params < 140e6
    weights = list(cached.glob("*.safetensors"))
    assert weights and (cached / "tokenizer.json").exists()
    assert "quantization_config" not in json.loads((cached / "config.json").read_text())
    stamp = {p: p.stat().st_mtime_ns for p in weights}
    assert embedded.default_model_dir() == cached               # the copy is reused: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in weights} == stamp
    assert not list(cached.parent.glob(f".{embedded.NAME}-*"))  # no half-written temp dir left
    assert "Paris" in backend.generate(["What is the capital of France?"], max_new_tokens=12)[0][0]


def test_likelihood_prefers_the_right_answer(default_backend):
    backend, _ = default_backend
    rows = []
    for i, (q, right, wrong) in enumerate(FACTS):
        rows += [Row(2 * i, [{"role": "user", "content": q}], right), Row(2 * i + 1, [{"role": "user", "content": q}], wrong)]
    res = score_batch(backend, rows, preset_config("fast", signals=("likelihood",)))  # no suffixes: fast test
    assert res.errors == {}
    lik = res.values["likelihood"]
    for i, (q, right, wrong) in enumerate(FACTS):
        assert lik[2 * i] > lik[2 * i + 1], f"{q}: {right} {lik[2 * i]:.4f} <= {wrong} {lik[2 * i + 1]:.4f}"
    assert set(res.values) == {"likelihood"} and np.all((lik > 0) & (lik < 1))


def test_in_context_likelihood_prefers_the_right_answer(default_backend):
    """With the other rows as worked examples, the right capital scores above another row's capital."""
    from clear_core.scoring import score_context
    from clear_core.signals.context import ContextIndex

    backend, _ = default_backend
    facts = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid")]
    rows = [Row(i, [{"role": "user", "content": f"What is the capital of {c}?"}], f"The capital of {c} is {city}.")
            for i, (c, city) in enumerate(facts)]
    cfg = preset_config("balanced")
    index = ContextIndex.build(np.arange(len(rows)), score_batch(backend, rows, cfg).prompt_emb)

    def lookup(ids):
        return {i: (rows[i].prompt, rows[i].response) for i in ids}

    wrong = [Row(-1 - i, r.prompt, r.response.replace(facts[i][1], facts[(i + 1) % len(facts)][1]))
             for i, r in enumerate(rows)]
    right_v = score_context(backend, rows, np.arange(len(rows)), index, lookup, cfg).values["likelihood_ctx"]
    wrong_v = score_context(backend, wrong, np.arange(len(rows)), index, lookup, cfg).values["likelihood_ctx"]
    for (c, city), r, w in zip(facts, right_v, wrong_v):
        assert r > w, f"{c}: {city} {r:.4f} <= {w:.4f}"
