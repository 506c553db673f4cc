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
    targets = set(correct._targets(ws, score_run, thr.t_keep).tolist())
    assert set(props["row_idx"].astype(int)) <= targets
    assert props["judge_conf"].between(0, 1).all()
    assert (props["confident"] == (props["judge_conf"] >= 0.8)).all()
    assert ws.examples(ws.get_dataset("small").id)["response"].tolist() == before


def test_correction_run_resumes_after_cancel(scored, tiny_backend):
    ws, score_run = scored
    cancel, seen = threading.Event(), []

    def progress(p):
        seen.append(p.done)
        if p.done > 0:
            cancel.set()

    cfg = CorrectConfig(batch_size=4, max_new_tokens=4)
    with pytest.raises(Cancelled):
        correct.run_correction(ws, "small", cfg, score_run=score_run, backend=tiny_backend, progress=progress,
                               cancel=cancel)
    run = ws.latest_run(ws.get_dataset("small").id, kind="correct")
    assert run.status == "stopped" and len(ws.done_rows(run.id, correct.PROPOSE)) == 4
    correct.resume(ws, run.id, backend=tiny_backend)
    done = ws.done_rows(run.id, correct.PROPOSE)
    assert ws.get_run(run.id).status == "done"
    assert len(done) == len(set(done.tolist())) == run.n_total
