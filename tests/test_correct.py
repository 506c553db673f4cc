"""Auto-Correct: the two-order judge's math, retrieval of in-context examples, candidate assembly, and a real
correction run with the tiny model (resumable, originals untouched)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from clear_core import correct
from clear_core.config import CorrectConfig
from clear_core.errors import Cancelled


def test_judge_confidence_cancels_position_bias():
    # A judge that always says "A" (or always "B") has no opinion: 0.5 whatever the order.
    always_a = np.array([[0.9, 0.1]])
    assert correct.judge_confidence(always_a, always_a)[0] == pytest.approx(0.5)
    always_b = np.array([[0.2, 0.8]])
    assert correct.judge_confidence(always_b, always_b)[0] == pytest.approx(0.5)
    # Prefers the candidate in both orders: shown as B first (P(B) = 0.9), then as A (P(A) = 0.7).
    assert correct.judge_confidence(np.array([[0.1, 0.9]]), np.array([[0.7, 0.3]]))[0] == pytest.approx(0.8)
    # Prefers the original in both orders.
    assert correct.judge_confidence(np.array([[0.8, 0.2]]), np.array([[0.1, 0.9]]))[0] == pytest.approx(0.15)


def test_judge_confidence_renormalises_letter_probabilities():
    # Unnormalised letter probabilities (other tokens took the rest of the mass) are renormalised per order.
    got = correct.judge_confidence(np.array([[0.1, 0.3]]), np.array([[0.2, 0.2]]))
    assert got[0] == pytest.approx(0.5 * (0.75 + 0.5))


def _logit(p):
    return np.log(p) - np.log1p(-p)


def test_pool_judges_neutral_judge_adds_nothing():
    p = np.array([0.1, 0.3, 0.6, 0.9])
    assert correct.pool_judges(p, np.full(4, 0.5)) == pytest.approx(p)
    assert correct.pool_judges(p, np.full(4, np.nan)) == pytest.approx(p)  # no opinion
    assert correct.pool_judges(p) == pytest.approx(p)
    assert correct.pool_judges(np.full(2, np.nan))[0] == pytest.approx(0.5)


def test_pool_judges_agreeing_judges_add_up_in_log_odds():
    # logit(0.8) + logit(0.8) = log(16): 16 / 17.
    assert correct.pool_judges(0.8, 0.8) == pytest.approx(16 / 17)
    a, b = np.array([0.6, 0.7, 0.3]), np.array([0.75, 0.65, 0.2])
    pooled = correct.pool_judges(a, b)
    assert _logit(pooled) == pytest.approx(_logit(a) + _logit(b))
    agree_up = a[:2] > 0.5
    assert (pooled[:2][agree_up] > np.maximum(a[:2], b[:2])[agree_up]).all()
    assert pooled[2] < min(a[2], b[2])  # two judges preferring the original: less than either
    # Two weak judges (0.6 and 0.75) together reach eta although neither does alone.
    assert pooled[0] >= 0.8 > max(a[0], b[0])


def test_pool_judges_symmetric():
    a, b = np.array([0.2, 0.55, 0.9]), np.array([0.7, 0.4, 0.35])
    assert correct.pool_judges(a, b) == pytest.approx(correct.pool_judges(b, a))
    # Swapping candidate and original (1 - p for every judge) gives 1 - pooled.
    assert correct.pool_judges(1 - a, 1 - b) == pytest.approx(1 - correct.pool_judges(a, b))
    # Opposite judges of equal strength cancel out.
    assert correct.pool_judges(0.9, 0.1) == pytest.approx(0.5)


def test_pool_judges_no_single_judge_is_certain():
    assert correct.pool_judges(1.0, 0.0) == pytest.approx(0.5)
    assert 0.5 < correct.pool_judges(1.0)[()] < 1.0


def test_dataset_judge_math():
    got = correct.dataset_judge(np.array([0.6, 0.1, 0.0, np.nan]), np.array([0.2, 0.3, 0.0, 0.5]))
    assert got[:2] == pytest.approx([0.75, 0.25])
    assert np.isnan(got[2]) and np.isnan(got[3])


@pytest.fixture
def categorical_fit():
    from clear_core.signals import neighbors

    rng = np.random.default_rng(0)
    n, names = 150, ("negative", "neutral", "positive")
    y = rng.integers(0, 3, n)
    emb = rng.normal(size=(n, 12))
    emb[np.arange(n), y] += 4.0  # the prompt embedding tells the class
    responses = [names[c] for c in y]
    for i in range(5):  # rows 0..4: noisy labels
        responses[i] = names[(y[i] + 1) % 3]
    model, result = neighbors.fit(emb, emb, responses, neighbors.NeighborsConfig(C=1.0))
    return emb, y, names, responses, model, result


def test_categorical_dataset_judge_uses_out_of_fold_probabilities(categorical_fit):
    emb, y, names, responses, model, result = categorical_fit
    rows = np.arange(10)
    got = correct.categorical_data_judge(model, emb, rows, [responses[i] for i in rows],
                                         [str(result.predicted[i]) for i in rows])
    # The out-of-fold classifier's P(predicted) and P(given) are `predicted_prob` and `raw` of the fit.
    expect = result.predicted_prob[rows] / (result.predicted_prob[rows] + result.raw[rows])
    assert got == pytest.approx(expect)
    # The noisy rows' clean class is preferred by the dataset judge, their given label is not.
    clean = correct.categorical_data_judge(model, emb, np.arange(5), responses[:5], [names[c] for c in y[:5]])
    assert (clean > 0.5).all()
    back = correct.categorical_data_judge(model, emb, np.arange(5), [names[c] for c in y[:5]], responses[:5])
    assert back == pytest.approx(1 - clean)


def test_categorical_dataset_judge_has_no_opinion_outside_the_classes(categorical_fit):
    emb, _, _, responses, model, _ = categorical_fit
    got = correct.categorical_data_judge(model, emb, [0, 1], [responses[0], "some free text"],
                                         ["not a class", "positive"])
    assert np.isnan(got).all()
    assert np.isnan(correct.categorical_data_judge(None, emb, [0], ["a"], ["b"])).all()


class _ToyJudge:
    """next_token_probs that prefers the response containing 'good', wherever it is shown; records the prompts."""

    def __init__(self, bias_a: float = 0.0):
        self.bias_a, self.seen = bias_a, []

    def next_token_probs(self, prompts, candidates):
        assert list(candidates) == ["A", "B"]
        out = []
        for p in prompts:
            text = p[-1]["content"]
            self.seen.append(text)
            a = text.split("### Response A\n")[1].split("\n\n### Response B")[0]
            pa = 0.9 if "good" in a else 0.1
            pa = min(1.0, pa + self.bias_a)
            out.append([pa, 1 - pa])
        return np.array(out)


def test_judge_asks_both_orders():
    backend = _ToyJudge()
    prompt = ({"role": "user", "content": "Q?"},)
    conf = correct.judge(backend, [prompt, prompt], ["bad answer", "good answer"], ["good fix", "bad fix"])
    assert conf[0] == pytest.approx(0.9) and conf[1] == pytest.approx(0.1)
    # 2 pairs x 2 orders; the first half shows the original as A, the second half the candidate as A.
    assert len(backend.seen) == 4
    assert "Response A\nbad answer" in backend.seen[0] and "Response A\ngood fix" in backend.seen[2]


def test_position_bias_alone_never_reaches_eta():
    backend = _ToyJudge(bias_a=0.5)  # strongly prefers whatever is shown first
    prompt = ({"role": "user", "content": "Q?"},)
    conf = correct.judge(backend, [prompt], ["bad answer"], ["bad fix"])
    assert conf[0] == pytest.approx(0.5)


def test_nearest_examples_matches_brute_force_and_excludes_self():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 8))
    pool = np.arange(0, 30, 2)  # even rows are "high confidence"
    queries = np.array([1, 4, 7])
    got = correct.nearest_examples(emb, queries, pool, k=3)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for q, nn in zip(queries, got):
        cand = [p for p in pool if p != q]
        expect = sorted(cand, key=lambda p: -float(unit[q] @ unit[p]))[:3]
        assert list(nn) == expect
        assert q not in nn


def test_icl_messages_layout():
    shots = [(({"role": "user", "content": "Q1"},), "A1"), (({"role": "user", "content": "Q2"},), "A2")]
    prompt = ({"role": "system", "content": "S"}, {"role": "user", "content": "Q"})
    msgs = correct.icl_messages(shots, prompt)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in msgs] == ["S", "Q1", "A1", "Q2", "A2", "Q"]


def test_clean_candidate_maps_onto_categories():
    cats = ("negative", "neutral", "positive")
    assert correct.clean_candidate("Positive.\nBecause profits rose", cats) == "positive"
    assert correct.clean_candidate("  neutral ", cats) == "neutral"
    assert correct.clean_candidate("free text answer\nmore", cats) == "free text answer"
    assert correct.clean_candidate(" free text ", ()) == "free text"
    options = ("A. negative", "B. neutral", "C. positive")
    assert correct.clean_candidate("C", options) == "C. positive"
    assert correct.clean_candidate("b. Neutral", options) == "B. neutral"
    assert correct.clean_candidate("D", options) == "D"


def test_categories_apply_to_categorical_rows_only():
    class Gen(_ToyJudge):
        def generate(self, prompts, n=1, **kw):
            return [["positive\nsecond line"] for _ in prompts]

    rows = [{"row_idx": 1, "prompt": ({"role": "user", "content": "q1"},), "response": "negative"},
            {"row_idx": 2, "prompt": ({"role": "user", "content": "q2"},), "response": "some text"}]
    props = correct.propose_batch(Gen(), rows, [[], []], CorrectConfig(), categories=("negative", "positive"),
                                  categorical={1})
    by_row = props.set_index("row_idx")["candidate"]
    assert by_row[1] == "positive" and by_row[2] == "positive\nsecond line"


class _ToyBackend(_ToyJudge):
    """generate() returns a fixed answer per prompt: 'good <last user content>'."""

    def generate(self, prompts, n=1, max_new_tokens=64, temperature=0.0, seed=0):
        return [[f"good {p[-1]['content']}"] for p in prompts]


def test_propose_batch_best_candidate_per_row_and_eta():
    rows = [{"row_idx": 5, "prompt": ({"role": "user", "content": "q5"},), "response": "bad"},
            {"row_idx": 9, "prompt": ({"role": "user", "content": "q9"},), "response": "good q9"}]
    props = correct.propose_batch(_ToyBackend(), rows, [[], []], CorrectConfig(eta=0.8),
                                  classifier={5: "bad label", 9: "other"})
    # Row 9's in-context answer equals its response (no proposal from it); its classifier answer is judged worse.
    by_row = props.set_index("row_idx")
    assert set(by_row.index) == {5, 9}
    assert by_row.loc[5, "candidate"] == "good q5" and by_row.loc[5, "source"] == "icl"
    assert by_row.loc[5, "judge_conf"] == pytest.approx(0.9) and bool(by_row.loc[5, "confident"])
    assert by_row.loc[9, "candidate"] == "other" and not bool(by_row.loc[9, "confident"])


def test_propose_batch_pools_llm_and_dataset_judges():
    rows = [{"row_idx": r, "prompt": ({"role": "user", "content": f"q{r}"},), "response": "bad"} for r in (1, 2, 3)]
    judged = {1: 0.75, 2: 0.5, 3: np.nan}  # the dataset judge's opinion per row

    def data_judge(row_idx, originals, candidates):
        assert originals == ["bad"] * len(row_idx)
        return np.array([judged[r] for r in row_idx])

    class Gen(_ToyJudge):  # a weak LLM judge: 0.6 for every candidate in both orders
        def next_token_probs(self, prompts, candidates):
            out = []
            for p in prompts:
                a = p[-1]["content"].split("### Response A\n")[1].split("\n\n### Response B")[0]
                out.append([0.6, 0.4] if a.startswith("fix") else [0.4, 0.6])
            return np.array(out)

        def generate(self, prompts, n=1, **kw):
            return [[f"fix {p[-1]['content']}"] for p in prompts]

    props = correct.propose_batch(Gen(), rows, [[]] * 3, CorrectConfig(eta=0.8), data_judge=data_judge)
    by_row = props.set_index("row_idx")
    assert by_row["judge_llm"].to_numpy() == pytest.approx([0.6, 0.6, 0.6])
    assert by_row.loc[1, "judge_conf"] == pytest.approx(correct.pool_judges(0.6, 0.75))
    assert bool(by_row.loc[1, "confident"])  # neither judge alone reaches eta, both together do
    assert by_row.loc[2, "judge_conf"] == pytest.approx(0.6) and not bool(by_row.loc[2, "confident"])
    assert by_row.loc[3, "judge_conf"] == pytest.approx(0.6) and np.isnan(by_row.loc[3, "judge_dataset"])
    scores = correct.judge_scores(props)
    assert set(zip(scores["row_idx"], scores["signal"])) == {
        (1, "judge_llm"), (2, "judge_llm"), (3, "judge_llm"), (1, "judge_dataset"), (2, "judge_dataset")}


def test_a_correction_run_needs_a_finished_score_run(small_workspace):
    from clear_core.errors import ClearError

    ws = small_workspace
    info = ws.get_dataset("small")
    with pytest.raises(ClearError, match="dataset 'small' has no finished scoring run; start a score run with "
                                         "`clear-studio score small`"):
        correct.run_correction(ws, "small")
    unfinished = ws.create_run(info.id, "score", "{}", info.n_rows)
    with pytest.raises(ClearError, match=f"score run {unfinished} is running, not finished; "
                                         f"`clear-studio resume {unfinished}` goes on with it"):
        correct.run_correction(ws, "small", score_run=unfinished)
    assert [r.kind for r in ws.list_runs(info.id)] == ["score"]  # no correction run was started


# ----------------------------------------------------------------------------------------- with the tiny model
@pytest.fixture
def scored(small_workspace, tiny_backend):
    from clear_core import pipeline
    from clear_core.config import preset_config

    run_id = pipeline.run_scoring(small_workspace, "small", preset_config("fast", batch_size=16),
                                  backend=tiny_backend)
    return small_workspace, run_id


def test_correction_run_stores_proposals_and_keeps_originals(scored, tiny_backend):
    from clear_core import filtering

    ws, score_run = scored
    before = ws.examples(ws.get_dataset("small").id)["response"].tolist()
    thr = filtering.run_thresholds(ws, score_run)
    run_id = correct.run_correction(ws, "small", CorrectConfig(batch_size=8, max_new_tokens=8), score_run=score_run,
                                    thresholds=thr, backend=tiny_backend)
    run = ws.get_run(run_id)
    _, conf = filtering.run_confidence(ws, score_run)
    assert run.status == "done" and run.n_total == int((conf < thr.t_keep).sum()) > 0
    props = ws.proposals(run_id)
    assert len(props) > 0 and props["row_idx"].is_unique
    targets = set(correct.target_rows(ws, score_run, thr.t_keep).tolist())
    assert set(props["row_idx"].astype(int)) <= targets
    assert props["judge_conf"].between(0, 1).all()
    assert (props["confident"] == (props["judge_conf"] >= 0.8)).all()
    assert ws.examples(ws.get_dataset("small").id)["response"].tolist() == before


def test_correction_run_resumes_after_cancel(scored, tiny_backend):
    ws, score_run = scored
    cancel, seen = threading.Event(), []

    def progress(p):
        seen.append(p.done)
        if p.stage == correct.PROPOSE and p.done > 0:  # after the first batch of proposals (not of calibration)
            cancel.set()

    cfg = CorrectConfig(batch_size=4, max_new_tokens=4)
    with pytest.raises(Cancelled):
        correct.run_correction(ws, "small", cfg, score_run=score_run, backend=tiny_backend, progress=progress,
                               cancel=cancel)
    run = ws.latest_run(ws.get_dataset("small").id, kind="correct")
    assert run.status == "stopped" and len(ws.done_rows(run.id, correct.PROPOSE)) == 4
    from clear_core import pipeline, runs
    from clear_core.errors import ClearError

    with pytest.raises(ClearError, match="is a correct run, not a score run"):
        pipeline.resume(ws, run.id, backend=tiny_backend)
    runs.resume(ws, run.id, backend=tiny_backend)  # the one resume for any kind of run
    done = ws.done_rows(run.id, correct.PROPOSE)
    assert ws.get_run(run.id).status == "done"
    assert len(done) == len(set(done.tolist())) == run.n_total


def test_confident_proposals_never_overwrite_the_original(scored, tiny_backend, monkeypatch):
    from clear_core import filtering

    ws, score_run = scored
    ds = ws.get_dataset("small")
    before = ws.examples(ds.id)[["row_idx", "response", "original"]]
    # A dataset judge sure of every candidate makes the proposals confident whatever the tiny LLM says.
    monkeypatch.setattr(correct.judging, "categorical_data_judge",
                        lambda model, emb, pos, o, c: np.full(len(pos), 0.999))
    thr = filtering.run_thresholds(ws, score_run)
    # calibration_rows=0: the rule is eta itself (a judge sure of everything fails calibration, by design).
    run_id = correct.run_correction(ws, "small", CorrectConfig(batch_size=8, max_new_tokens=8, calibration_rows=0),
                                    score_run=score_run, thresholds=thr, backend=tiny_backend)
    props = ws.proposals(run_id)
    assert props["confident"].fillna(False).sum() > 0
    after = ws.examples(ds.id)[["row_idx", "response", "original"]]
    assert after.equals(before)
    assert ws.current_decisions(ds.id).empty  # nothing accepted on its own
    parts = ws.scores_wide(run_id).set_index("row_idx").loc[props["row_idx"]]
    pooled = correct.pool_judges(*(parts[c].to_numpy() for c in correct.JUDGE_SIGNALS if c in parts))
    assert props["judge_conf"].to_numpy() == pytest.approx(pooled)
    assert ws.get_run(run_id).config["judge"] == correct.JUDGE_METHOD
