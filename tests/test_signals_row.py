"""Row signals: their pure math, and score_batch on the tiny model against naive per-row references."""

from __future__ import annotations

import numpy as np
import pytest

from clear_core.config import preset_config
from clear_core.errors import UnknownNameError
from clear_core.scoring import Row, plan_batches, prepare_item, score_batch
from clear_core.signals import REGISTRY, get_signal, consistency, ifd, likelihood, reflection

ROWS = [Row(10 + i, [{"role": "user", "content": q}], r) for i, (q, r) in enumerate([
    ("What is the capital of France?", "Paris"),
    ("What is 2 + 3?", "The answer is 5."),
    ("Sentiment of: the plant closed and demand fell for the third quarter in a row.", "negative"),
    ("Say hello in French.", "Bonjour, comment allez-vous aujourd'hui ?"),
    ("Name a colour.", "Blue"),
])]


# ---- pure math -------------------------------------------------------------------------------------------------
def test_likelihood_is_exp_mean_logprob():
    values, raw = likelihood.score([np.log([0.5, 0.125]), np.log([1.0]), np.zeros(0)])
    np.testing.assert_allclose(values[:2], [0.25, 1.0])
    np.testing.assert_allclose(raw[:2], [np.log(0.25), 0.0])
    assert np.isnan(values[2])


def test_likelihood_min_and_end_values():
    values, raw = likelihood.score_min([np.log([0.5, 0.125, 0.9]), np.zeros(0)])
    assert values[0] == pytest.approx(0.125) and raw[0] == pytest.approx(np.log(0.125)) and np.isnan(values[1])
    values, raw = likelihood.score_end([np.log(0.25), np.nan])
    assert values[0] == pytest.approx(0.25) and np.isnan(values[1]) and np.isnan(raw[1])


def test_likelihood_relative_ranks_against_nearest_prompts():
    # two clusters of prompts with different typical log-probs; each row is ranked only within its own cluster
    unit = np.array([[1, 0], [1, 0.01], [1, -0.01], [1, 0.02], [0, 1], [0.01, 1], [-0.01, 1], [0.02, 1]], float)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    raw = np.array([-1.0, -1.1, -1.2, -3.0, -5.0, -5.1, -5.2, -4.0])
    rel = likelihood.relative(raw, unit, k=3)
    assert rel[3] == pytest.approx(0.5 / 4) and rel[7] == pytest.approx(3.5 / 4)  # the cluster's lowest / highest
    assert rel[0] == pytest.approx(3.5 / 4) and rel[4] < rel[7]
    assert np.all((rel >= 0) & (rel <= 1))
    # a query made from row 0 (same prompt) with a worse response ranks lowest; row 0 itself is not a neighbour
    q = likelihood.relative(raw, unit, k=3, query_raw=np.array([-3.5, -0.5]), query_unit=unit[[0, 0]],
                            source_rows=np.array([0, 0]))
    assert q[0] == pytest.approx(0.5 / 4) and q[1] == pytest.approx(3.5 / 4)
    assert np.isnan(likelihood.relative(np.array([np.nan, -1.0, -2.0]), unit[:3], k=2)[0])


def test_likelihood_relative_fit_and_queries_agree():
    """fit_relative centres the embeddings itself; a query equal to a row (its own source) scores like the row."""
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(size=(10, 6)) + 5, rng.normal(size=(10, 6)) - 5])
    raw = np.r_[rng.normal(-1, 0.2, 10), rng.normal(-4, 0.2, 10)]
    model, values = likelihood.fit_relative(raw, emb, k=5)
    assert values.shape == (20,) and np.all((values >= 0) & (values <= 1))
    again = likelihood.relative_queries(model, raw[[3, 15]], emb[[3, 15]], [3, 15])
    np.testing.assert_allclose(again, values[[3, 15]])
    worse = likelihood.relative_queries(model, np.array([raw[3] - 10]), emb[[3]], [3])
    assert worse[0] == pytest.approx(0.5 / 6)  # below every neighbour of its own prompt


def test_reflection_expected_letter_score():
    probs = np.array([[[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]],     # A then C -> (1 + 0.5) / 2
                      [[0.1, 0.3, 0.0], [1.0, 1.0, 2.0]]])    # renormalised: 0.25 and (0.25 + 0.25)
    values, raw = reflection.score(probs)
    np.testing.assert_allclose(values, [0.75, 0.375])
    np.testing.assert_allclose(reflection.renormalise([1.0, 1.0, 2.0]), [0.25, 0.25, 0.5])
    assert np.all((values >= 0) & (values <= 1))


def test_ifd_ratio_and_logistic_map():
    cond, alone = [np.log([0.5, 0.5]), np.log([0.1])], [np.log([0.25, 0.25]), np.log([0.1])]
    np.testing.assert_allclose(ifd.ratio(cond, alone), [0.5, 1.0])
    values, raw = ifd.score(np.array([0.5, 1.0, 1.5]))
    np.testing.assert_allclose(values[1], 0.5)
    np.testing.assert_allclose(values, 1 / (1 + np.exp(ifd.SLOPE * (raw - 1))))
    assert values[0] > values[1] > values[2]


def test_consistency_text_pieces():
    assert consistency.normalise("The  Answer: Paris!") == "answer paris"
    assert consistency.extract_answer("explanation: it is in France. Answer: Paris.") == "Paris."
    assert consistency.extract_answer("just Paris") == "just Paris"
    assert consistency.exact_match("Paris.", "the paris") == 1.0
    assert consistency.exact_match("Paris", "Berlin") == 0.0
    assert consistency.token_f1("the red big car", "a red car") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert consistency.token_f1("Paris", "Berlin") == 0.0
    values, raw = consistency.score(np.array([[1.0, 0.5]]), np.array([[1.0, 0.0]]), alpha=0.8)
    np.testing.assert_allclose(values, [(0.8 * 1 + 0.2 * 1 + 0.8 * 0.5) / 2])
    np.testing.assert_allclose(raw, [0.5])


class _FakeBackend:
    """Fixed samples and a fixed P(Yes), to check how consistency.compute combines them."""

    def __init__(self, samples, p_yes):
        self.samples, self.p_yes, self.judged = samples, p_yes, []

    def generate(self, prompts, n=1, max_new_tokens=64, temperature=0.0, seed=0):
        assert all(consistency.COT_TEMPLATE.split(":")[0] in p[-1]["content"] for p in prompts)
        return [self.samples[i][:n] for i in range(len(prompts))]

    def next_token_probs(self, prompts, candidates, answer_prefix=""):
        self.judged += list(prompts)
        return np.array([[self.p_yes, 1 - self.p_yes]] * len(prompts))


def test_consistency_compute_combines_agreement_and_exact_match():
    prompts = [[{"role": "user", "content": "Capital of France?"}], [{"role": "user", "content": "2+3?"}]]
    fake = _FakeBackend([["explanation: x. answer: Paris", "answer: Lyon"], ["answer: 5", "answer: five"]], 0.9)
    values, raw, _ = consistency.compute(fake, prompts, ["Paris", "5"], k=2, alpha=0.8, agreement="llm")
    np.testing.assert_allclose(raw, [0.5, 0.5])
    np.testing.assert_allclose(values, [0.8 * 0.9 + 0.2 * 0.5] * 2)
    assert len(fake.judged) == 4 and "Answer 1: Lyon" in fake.judged[1]
    values, _, _ = consistency.compute(fake, prompts, ["Paris", "5"], k=2, agreement="f1")
    np.testing.assert_allclose(values, [(1.0 + 0.2 * 0 + 0.8 * 0) / 2, (1.0 + 0.0) / 2])


def test_registry_lists_names():
    assert set(REGISTRY) >= {"likelihood", "likelihood_min", "likelihood_end", "reflection", "consistency", "ifd",
                             "neighbors", "form"}
    assert get_signal("neighbors").kind == "dataset" and get_signal("ifd").kind == "row"
    assert get_signal("likelihood").load() is likelihood
    assert callable(get_signal("neighbors").load().compute)  # the dataset signal's module, imported on demand
    with pytest.raises(UnknownNameError, match="valid: .*likelihood.*neighbors"):
        get_signal("perplexity")


def test_plan_batches_respects_budget_and_is_optimal():
    import itertools

    lengths = [5, 40, 12, 7, 33, 50, 9]
    groups = plan_batches(lengths, budget=60, overhead=10)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 60
    assert [lengths[i] for g in groups for i in g] == sorted(lengths)

    def cost(parts):
        return sum(len(p) * max(p) + 10 for p in parts)

    ls = sorted(lengths)  # brute force over every cut of the sorted order that fits the budget
    plans = []
    for cuts in itertools.product([0, 1], repeat=len(ls) - 1):
        parts, cur = [], [ls[0]]
        for x, c in zip(ls[1:], cuts):
            if c:
                parts.append(cur)
                cur = []
            cur.append(x)
        parts.append(cur)
        if all(len(p) == 1 or len(p) * max(p) <= 60 for p in parts):
            plans.append(cost(parts))
    assert cost([[lengths[i] for i in g] for g in groups]) == min(plans)
    # a long row gets its own forward instead of padding many short ones
    assert plan_batches([10] * 8 + [500], budget=10_000, overhead=64) == [list(range(8)), [8]]
    assert plan_batches([10] * 8, budget=10_000) == [list(range(8))]


# ---- score_batch on the tiny model -----------------------------------------------------------------------------
def test_score_batch_matches_naive_per_row(tiny_backend):
    cfg = preset_config("thorough", k_samples=0, forward_tokens=64,  # several small forwards
                        signals=("likelihood", "reflection", "ifd", "neighbors"))
    res = score_batch(tiny_backend, ROWS, cfg)
    assert res.errors == {} and list(res.row_idx) == [r.row_idx for r in ROWS]
    assert set(res.values) == {"likelihood", "reflection", "ifd"}
    for i, row in enumerate(ROWS):
        item = prepare_item(tiny_backend, row.prompt, row.response, cfg.max_tokens)
        lp = likelihood.naive_token_logprobs(tiny_backend, list(item.ids), item.response_start)[:-1]
        assert res.raw["likelihood"][i] == pytest.approx(lp.mean(), abs=1e-4)
        probs = np.stack([reflection.naive_letter_probs(tiny_backend, list(item.ids), q) for q in reflection.QUESTIONS])
        assert res.values["reflection"][i] == pytest.approx(float((probs @ reflection.LETTER_SCORES).mean()), abs=1e-4)
        assert res.raw["ifd"][i] == pytest.approx(ifd.naive_ratio(tiny_backend, row.prompt, row.response), abs=1e-4)
    for name, v in res.values.items():
        assert np.all((v >= 0) & (v <= 1)), name
    extra = score_batch(tiny_backend, ROWS, preset_config("thorough", k_samples=0, forward_tokens=64,
                                                          signals=("likelihood_min", "likelihood_end")))
    assert set(extra.values) == {"likelihood_min", "likelihood_end"}
    for i, row in enumerate(ROWS):
        item = prepare_item(tiny_backend, row.prompt, row.response, cfg.max_tokens)
        lp = likelihood.naive_token_logprobs(tiny_backend, list(item.ids), item.response_start)
        assert extra.raw["likelihood_min"][i] == pytest.approx(lp[:-1].min(), abs=1e-4)
        assert extra.raw["likelihood_end"][i] == pytest.approx(lp[-1], abs=1e-4)
    one_batch = score_batch(tiny_backend, ROWS, preset_config("thorough", k_samples=0, forward_tokens=100_000))
    for name in res.values:
        np.testing.assert_allclose(one_batch.values[name], res.values[name], atol=1e-4)
    np.testing.assert_allclose(one_batch.prompt_emb, res.prompt_emb, atol=1e-4)
    assert res.prompt_emb.shape == (len(ROWS), tiny_backend.model.config.hidden_size)
    assert res.prompt_emb.dtype == np.float32 and res.n_tokens > sum(len(r.response) for r in ROWS) // 4


def test_a_failing_row_is_reported_and_the_others_go_on(tiny_backend):
    bad = Row(99, [{"role": "user", "content": None}], "x")  # the chat template cannot render None
    rows = ROWS[:2] + [bad] + ROWS[2:3]
    res = score_batch(tiny_backend, rows, preset_config("fast"))
    assert set(res.errors) == {99}
    assert np.isnan(res.values["likelihood"][2]) and np.isnan(res.prompt_emb[2]).all()
    good = score_batch(tiny_backend, ROWS[:3], preset_config("fast"))
    np.testing.assert_allclose(res.values["likelihood"][[0, 1, 3]], good.values["likelihood"], atol=1e-4)


def test_long_rows_are_cut_from_the_left_of_the_prompt(tiny_backend):
    prompt = [{"role": "user", "content": "word " * 200 + "What is the capital of France?"}]
    full_ids, start = tiny_backend.render(prompt, "Paris is the capital.")
    item = prepare_item(tiny_backend, prompt, "Paris is the capital.", max_tokens=40)
    assert len(item.ids) == 40 and item.ends_turn
    assert item.ids == tuple(full_ids[-40:]) and item.n_response == len(full_ids) - start
    tiny = prepare_item(tiny_backend, prompt, "long answer " * 50, max_tokens=40)
    assert len(tiny.ids) == 40 and tiny.n_prompt == 16 and not tiny.ends_turn
    res = score_batch(tiny_backend, [Row(0, prompt, "Paris is the capital.")], preset_config("fast", max_tokens=40))
    assert res.errors == {} and res.n_tokens < 40 + 2 * 60


def test_consistency_through_score_batch_is_seeded(tiny_backend):
    cfg = preset_config("thorough", k_samples=2, max_new_tokens=6, agreement="llm")
    a = score_batch(tiny_backend, ROWS[:3], cfg)
    b = score_batch(tiny_backend, ROWS[:3], cfg)
    np.testing.assert_array_equal(a.values["consistency"], b.values["consistency"])
    assert np.all((a.values["consistency"] >= 0) & (a.values["consistency"] <= 1))
    assert "consistency" not in score_batch(tiny_backend, ROWS[:3], preset_config("thorough", k_samples=0)).values
