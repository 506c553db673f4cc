"""likelihood_ctx: worked-example choice, the chat it builds, the batched pass against a per-row reference on the
tiny model, and its pipeline stage (resumable, calibrated, stored)."""

from __future__ import annotations

import numpy as np
import pytest

from clear_core import pipeline
from clear_core.chat import few_shot
from clear_core.config import preset_config
from clear_core.scoring import Row, score_context
from clear_core.signals import context, get_signal
from conftest import run_then_stop

SIGNALS = ("likelihood", "likelihood_ctx", "neighbors")
CONFIG = preset_config("fast", batch_size=8, signals=SIGNALS, weights={s: 1.0 for s in SIGNALS})


def _clusters():
    """Two tight clusters of 4 prompts each (embeddings), cluster A near (1, 0), B near (0, 1)."""
    emb = np.array([[5, 0.1], [5, 0.2], [5, -0.1], [5, 0.4], [0.1, 5], [0.2, 5], [-0.1, 5], [0.3, 5]], float)
    return emb + 10.0  # an offset: ContextIndex centres the embeddings itself


def test_examples_are_the_nearest_other_rows_least_similar_first():
    index = context.ContextIndex.build(np.arange(100, 108), _clusters())
    got = index.examples_for([100, 105], k=3)
    assert got.shape == (2, 3)
    assert set(got[0]) == {101, 102, 103} and set(got[1]) == {104, 106, 107}  # own cluster, never itself
    unit = dict(zip(index.row_idx, index.unit))
    for row, ex in zip((100, 105), got):
        sims = [float(unit[row] @ unit[e]) for e in ex]
        assert sims == sorted(sims)  # the nearest example comes last, right before the row
    assert index.examples_for([100], k=50).shape == (1, 7)  # k is capped by the other rows
    assert (index.examples_for([999], k=2) == -1).all()  # a row without an embedding gets no examples
    single = context.ContextIndex.build([7], np.ones((1, 2)))
    assert single.examples_for([7]).shape == (1, 0)


def test_few_shot_puts_examples_as_earlier_turns():
    row = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Peru?"}]
    examples = [([{"role": "system", "content": "other"}, {"role": "user", "content": "Capital of Chile?"}], "Santiago"),
                ([{"role": "user", "content": "x" * 5000}], "Lima? no: " + "y" * 5000)]
    msgs = few_shot(row, examples, context.MAX_EXAMPLE_CHARS)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"] == "Be brief." and msgs[1]["content"] == "Capital of Chile?"
    assert msgs[2]["content"] == "Santiago" and msgs[-1]["content"] == "Capital of Peru?"
    assert len(msgs[3]["content"]) <= context.MAX_EXAMPLE_CHARS + 2 and msgs[4]["content"].endswith(" …")
    assert few_shot(row, [], context.MAX_EXAMPLE_CHARS) == row
    assert get_signal("likelihood_ctx").kind == "context"


def test_score_is_exp_mean_including_the_end_token_and_min_without_it():
    values, raw = context.score([np.log([0.5, 0.125]), np.zeros(0)])
    assert values[0] == pytest.approx(0.25) and raw[0] == pytest.approx(np.log(0.25)) and np.isnan(values[1])
    values, raw = context.score_min([np.log([0.5, 0.25, 0.01]), np.log([0.5, 0.01]), np.log([0.3]), np.zeros(0)],
                                    [True, False, True, True])
    np.testing.assert_allclose(values[:3], [0.25, 0.01, 0.3])  # a cut row has no end token; a lone token stays
    assert raw[0] == pytest.approx(np.log(0.25)) and np.isnan(values[3])


def test_score_context_matches_the_per_row_reference(tiny_backend):
    """The batched, padded pass equals each row's log-probs from one unpadded forward over the built chat."""
    qa = [("What is the capital of France?", "Paris"), ("What is the capital of Peru?", "Lima"),
          ("What is 2 + 3?", "The answer is 5."), ("What is 7 - 4?", "3"), ("Name a colour.", "Blue, or red")]
    rows = [Row(i, [{"role": "user", "content": q}], r) for i, (q, r) in enumerate(qa)]
    emb = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.9, 0], [0, 0, 1]], float)
    index = context.ContextIndex.build(np.arange(5), emb)

    def lookup(ids):
        return {i: (rows[i].prompt, rows[i].response) for i in ids}

    res = score_context(tiny_backend, rows, np.arange(5), index, lookup, CONFIG)
    assert res.errors == {} and res.prompt_emb is None
    assert set(res.values) == {"likelihood_ctx", "likelihood_ctx_min"}
    chosen = index.examples_for(np.arange(5), CONFIG.context_examples)
    for i, row in enumerate(rows):
        chat = few_shot(row.prompt, [lookup([d])[d] for d in chosen[i]], context.MAX_EXAMPLE_CHARS)
        ref = tiny_backend.token_logprobs([chat], [row.response])[0]
        assert res.raw["likelihood_ctx"][i] == pytest.approx(ref.mean(), abs=2e-4)
        assert res.raw["likelihood_ctx_min"][i] == pytest.approx(ref[:-1].min(), abs=2e-4)  # end token left out
    # examples change the value (the same row scored without them differs)
    bare = tiny_backend.token_logprobs([rows[1].prompt], [rows[1].response])[0].mean()
    assert abs(bare - res.raw["likelihood_ctx"][1]) > 1e-3
    # a synthetic row scored against a source row gets that row's examples, never the source row itself
    syn = score_context(tiny_backend, [Row(-1, rows[0].prompt, "Berlin")], [0], index, lookup, CONFIG)
    chat = few_shot(rows[0].prompt, [lookup([d])[d] for d in chosen[0]], context.MAX_EXAMPLE_CHARS)
    assert syn.raw["likelihood_ctx"][0] == pytest.approx(tiny_backend.token_logprobs([chat], ["Berlin"])[0].mean(),
                                                         abs=2e-4)


def test_a_run_with_likelihood_ctx_has_a_context_stage(small_workspace, tiny_backend):
    ws = small_workspace
    seen = []
    run_id = pipeline.run_scoring(ws, "small", CONFIG, backend=tiny_backend, progress=seen.append)
    run = ws.get_run(run_id)
    assert run.status == "done" and run.n_failed == 0
    wide = ws.scores_wide(run_id)
    assert wide["likelihood_ctx"].between(0, 1).all() and wide["likelihood_ctx"].nunique() > 10
    assert "likelihood_ctx_min" not in wide  # only the config's signals are stored
    stages = ws.cursor().execute("SELECT stage, count(*) FROM row_status WHERE run_id = ? GROUP BY stage",
                                 [run_id]).fetchall()
    assert dict(stages) == {"rows": 48, "context": 48, "dataset": 48}
    ctx = [p.done for p in seen if p.stage == "context"]
    assert ctx == [0, 8, 16, 24, 32, 40, 48]
    assert set(run.weights) <= set(SIGNALS) and sum(run.weights.values()) > 0


def test_a_run_stopped_in_the_context_stage_resumes_to_the_same_values(small_workspace, tiny_backend):
    ws = small_workspace
    full, stopped = run_then_stop(ws, "small", CONFIG, tiny_backend, "context", after=16)
    assert ws.get_run(stopped).status == "stopped" and len(ws.pending_rows(stopped, "context")) == 48 - 16
    pipeline.resume(ws, stopped, backend=tiny_backend)
    a, b = ws.scores_wide(full), ws.scores_wide(stopped)
    np.testing.assert_allclose(a["likelihood_ctx"], b["likelihood_ctx"], atol=1e-6)
    np.testing.assert_allclose(a["confidence"], b["confidence"], atol=1e-6)
