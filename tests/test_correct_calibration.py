"""Auto-Correct's calibrated acceptance rule, the confident-learning relabel and the scorer judge: the pure
functions against hand-computed values, propose_batch with toy judges, and a correction run storing its rule."""

from __future__ import annotations

import numpy as np
import pytest

from clear_core import correct
from clear_core.config import CorrectConfig
from clear_core.correct import acceptance, relabel
from test_correct import scored  # noqa: F401 - the scored tiny-model workspace fixture


def test_fit_threshold_is_the_lowest_that_keeps_precision_at_eta():
    conf = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.55, 0.52])
    right = np.array([1, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
    t, prec, n = acceptance.fit_threshold(conf, right, eta=0.8, min_accepted=3)
    # >= 0.6: 5 of 6 right (0.83); >= 0.55: 5 of 7 (0.71) < 0.8.
    assert (t, n) == (0.6, 6) and prec == pytest.approx(5 / 6)


def test_fit_threshold_nothing_reaches_eta():
    t, prec, n = acceptance.fit_threshold(np.array([0.9, 0.8, 0.7]), np.array([0, 1, 0], bool), eta=0.8,
                                          min_accepted=1)
    assert t > 1.0 and n == 0 and prec == pytest.approx(0.5)
    t, prec, n = acceptance.fit_threshold(np.zeros(0), np.zeros(0, bool), eta=0.8)
    assert t > 1.0 and np.isnan(prec)


def test_fit_threshold_respects_floor_and_ties():
    conf = np.array([0.9, 0.4, 0.4, 0.4])
    right = np.array([1, 1, 1, 0], bool)
    t, _, n = acceptance.fit_threshold(conf, right, eta=0.7, floor=0.5, min_accepted=1)
    assert (t, n) == (0.9, 1)  # 0.4 is below the floor, even though its precision (3/4) reaches eta
    t, _, n = acceptance.fit_threshold(conf, right, eta=0.7, floor=0.0, min_accepted=1)
    assert (t, n) == (0.4, 4)  # equal values are accepted together


def test_reliability_curve_bins():
    curve = acceptance.reliability_curve(np.array([0.1, 0.55, 0.58, 0.99, 1.0]), np.array([0, 1, 0, 1, 1], bool))
    by_lo = {lo: (k, ok) for lo, hi, k, ok in curve}
    assert by_lo[0.0] == (1, 0) and by_lo[0.5] == (2, 1) and by_lo[0.95] == (2, 2)
    assert sum(k for _, _, k, _ in curve) == 5


def test_rescale_puts_the_threshold_at_eta():
    p = np.array([0.0, 0.3, 0.6, 0.8, 1.0])
    out = acceptance.rescale(p, 0.6, 0.8)
    assert out == pytest.approx([0.0, 0.4, 0.8, 0.9, 1.0])
    assert acceptance.rescale(p, 0.8, 0.8) == pytest.approx(p)  # identity at eta
    assert (acceptance.rescale(p, np.nextafter(1.0, 2.0), 0.8) < 0.8).all()  # nothing accepted


def test_rule_round_trip_and_description():
    rule = acceptance.fit_rule(np.array([0.9, 0.85, 0.8, 0.7, 0.6, 0.55]), np.array([1, 1, 1, 1, 1, 0], bool),
                               eta=0.8, n_rows=12, kinds={"swap": 6, "control": 6})
    back = acceptance.AcceptanceRule.from_dict(rule.to_dict())
    assert back == rule and back.method == "calibrated" and back.threshold == pytest.approx(0.55)  # 5 of 6 right: 0.83
    assert "0.550" in back.describe() and "12 synthetic rows" in back.describe()
    plain = acceptance.AcceptanceRule.from_dict(None, eta=0.8)
    assert plain.threshold == 0.8 and "no calibration" in plain.describe()


def test_synthetic_rows_come_from_the_most_confident_rows_with_controls():
    rows = [{"prompt": ({"role": "user", "content": f"question number {i} about things"},),
             "response": f"answer {i} with several words in it here"} for i in range(20)]
    conf = np.linspace(0, 1, 20)
    made = acceptance.synthetic_rows(rows, conf, n=6, seed=0)
    bad = [m for m in made if m["kind"] != "control"]
    controls = [m for m in made if m["kind"] == "control"]
    assert len(bad) == 6 and len(controls) == 6
    assert all(m["source_row"] >= 10 for m in made)  # the top half by confidence
    assert all(m["target"] == rows[m["source_row"]]["response"] != m["response"] for m in bad)
    assert all(m["target"] is None and m["response"] == rows[m["source_row"]]["response"] for m in controls)
    assert acceptance.synthetic_rows(rows, conf, n=0) == []


def _table():
    proba = np.array([[0.7, 0.2, 0.1],   # labelled 0, sure of 0
                      [0.1, 0.8, 0.1],   # labelled 0, sure of 1 (a flip)
                      [0.3, 0.4, 0.3],   # labelled 2, unsure
                      [0.05, 0.9, 0.05],  # labelled 1
                      [np.nan] * 3])      # free text
    labels = np.array([0, 0, 2, 1, -1])
    return relabel.table(proba, labels, ("neg", "neu", "pos"), ("Neg", "Neu", "Pos"), quantile=0.5)


def test_class_thresholds_are_per_class_quantiles():
    t = _table().class_threshold
    assert t == pytest.approx([np.median([0.7, 0.1]), 0.9, 0.3])


def test_relabel_pick_and_sure():
    tab = _table()
    cand, p, ratio = tab.pick(1, "neg")
    assert (cand, p, ratio) == ("Neu", 0.8, pytest.approx(0.8 / 0.9))
    assert not tab.sure(cand, p, ratio, threshold=0.7)  # P(neu) 0.8 is below neu's threshold 0.9
    cand, p, ratio = tab.pick(2, "pos")
    assert cand == "Neu" and ratio == pytest.approx(0.4 / 0.7) and not tab.sure(cand, p, ratio, 0.5)
    # Row 0's prompt answered "neu" (a synthetic flip): "Neg" at 0.7, above neg's threshold 0.4.
    cand, p, ratio = tab.pick(0, "neu")
    assert cand == "Neg" and ratio == pytest.approx(0.7 / 0.9) and tab.sure(cand, p, ratio, 0.75)
    assert not tab.sure(cand, p, ratio, 0.8)
    # A synthetic row answered "neu" on row 1's prompt: the best other class is "neg".
    assert tab.pick(1, "neu")[0] == "Neg"
    assert tab.pick(4, "neg")[0] is None and tab.pick(0, "something else")[0] is None


def test_llm_allows():
    assert relabel.llm_allows([np.nan, 0.5, 0.41, 0.39], veto=0.1).tolist() == [True, True, True, False]


class _Judge:
    """The LLM judge at a fixed verdict per candidate text (both orders agree)."""

    def __init__(self, verdict):
        self.verdict = verdict

    def generate(self, prompts, n=1, **kw):
        return [["icl answer"] for _ in prompts]

    def next_token_probs(self, prompts, candidates):
        out = []
        for p in prompts:
            text = p[-1]["content"]
            a = text.split("### Response A\n")[1].split("\n\n### Response B")[0]
            b = text.split("### Response B\n")[1].split("\n\nAnswer with")[0]
            cand_is_b = a == "orig"
            v = self.verdict.get(b if cand_is_b else a, 0.5)
            out.append([1 - v, v] if cand_is_b else [v, 1 - v])
        return np.array(out)


def _rows(n=3):
    return [{"row_idx": r, "prompt": ({"role": "user", "content": f"q{r}"},), "response": "orig"} for r in range(n)]


def test_relabel_wins_the_row_and_is_confident_unless_vetoed():
    rows = _rows(3)
    classifier = {0: "Neu", 1: "Neu", 2: "Neu"}
    sure = {0: True, 1: True, 2: False}
    cfg = CorrectConfig(eta=0.8, relabel_llm_veto=0.1)
    # The LLM judge likes the icl answer more than the classifier's; it vetoes nothing at 0.45.
    props = correct.propose_batch(_Judge({"icl answer": 0.7, "Neu": 0.45}), rows, [[]] * 3, cfg,
                                  classifier=classifier, relabel=sure).set_index("row_idx")
    assert props.loc[0, "source"] == "relabel" and props.loc[0, "candidate"] == "Neu"
    assert bool(props.loc[0, "confident"]) and props.loc[0, "judge_conf"] >= 0.8
    assert props.loc[0, "relabel_llm"] == pytest.approx(0.45)
    assert props.loc[2, "source"] == "icl" and not bool(props.loc[2, "confident"])  # not sure: judged as usual
    vetoed = correct.propose_batch(_Judge({"icl answer": 0.7, "Neu": 0.3}), rows, [[]] * 3, cfg,
                                   classifier=classifier, relabel=sure).set_index("row_idx")
    assert (vetoed["source"] != "relabel").all() and not vetoed["confident"].any()


def test_scorer_judge_is_pooled_and_the_threshold_rescales():
    rows = _rows(2)
    margins = {0: 0.9, 1: 0.5}

    def scorer_judge(row_idx, prompts, originals, candidates):
        assert [p[-1]["content"] for p in prompts] == [f"q{r}" for r in row_idx]
        return np.array([margins[r] for r in row_idx])

    cfg = CorrectConfig(eta=0.8)
    props = correct.propose_batch(_Judge({"icl answer": 0.6}), rows, [[]] * 2, cfg,
                                  scorer_judge=scorer_judge).set_index("row_idx")
    assert props["judge_scorer"].tolist() == pytest.approx([0.9, 0.5])
    assert props.loc[0, "judge_conf"] == pytest.approx(correct.pool_judges(0.6, 0.9))
    assert bool(props.loc[0, "confident"]) and not bool(props.loc[1, "confident"])
    # A calibrated rule that asks for more than the pooled 0.93 leaves row 0 below eta.
    strict = correct.propose_batch(_Judge({"icl answer": 0.6}), rows, [[]] * 2, cfg, scorer_judge=scorer_judge,
                                   threshold=0.95).set_index("row_idx")
    assert not strict["confident"].any()
    assert strict.loc[0, "judge_conf"] == pytest.approx(acceptance.rescale(correct.pool_judges(0.6, 0.9), 0.95, 0.8))


def test_scorer_margin_prefers_the_more_trustworthy_text():
    from clear_core.correct.scorer import Scorer
    from clear_core.signals.dataset import DatasetFit

    class Fixed(Scorer):
        def score(self, backend, prompts, responses, positions):
            return np.array([0.1 if r == "" else 0.6 for r in responses])

    from clear_core.config import ScoreConfig

    sc = Fixed(config=ScoreConfig(), weights={"likelihood": 1.0}, fitted=DatasetFit(),
               stored={"likelihood": np.array([0.1, 0.6])})
    out = sc.judge(None, [(), ()], ["", "fine"], ["a fix", "a fix"], [0, 1])
    assert out == pytest.approx([0.6 / 0.7, 0.5])


def test_correction_run_stores_its_calibrated_rule_and_scorer_judge(scored, tiny_backend):
    from clear_core import filtering

    ws, score_run = scored
    thr = filtering.run_thresholds(ws, score_run)
    run_id = correct.run_correction(ws, "small", CorrectConfig(batch_size=8, max_new_tokens=4, calibration_rows=6),
                                    score_run=score_run, thresholds=thr, backend=tiny_backend)
    run = ws.get_run(run_id)
    rule = acceptance.AcceptanceRule.from_dict(run.config["acceptance"])
    assert rule.method == "calibrated" and rule.n_rows == 12 and rule.kinds["control"] == 6
    assert sum(k for _, _, k, _ in rule.curve) == rule.n_proposals > 0
    props = ws.proposals(run_id)
    assert (props["confident"] == (props["judge_conf"] >= 0.8)).all()
    parts = ws.scores_wide(run_id)
    assert "judge_scorer" in parts and parts["judge_scorer"].between(0, 1).all()


# ------------------------------------------------------------------------------------------- the Review page
@pytest.fixture
def reviewed(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from bench.ui_latency import make_dataset, write_fake_run
    from clear_core.store import Workspace

    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "small", 40)
        write_fake_run(ws, "small", proposal_share=0.8)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    yield path, root
    from app_helpers import close_app_workspace

    close_app_workspace(path)


def test_review_explains_the_fix_and_accepts_all_confident_after_a_count(reviewed):
    from streamlit.testing.v1 import AppTest

    from clear_core.store.proposal_detail import confident_undecided
    from ui import state

    path, root = reviewed
    at = AppTest.from_file(str(root / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, [e.value for e in at.exception]
    ws = state.workspace(path)
    ds_id = ws.get_dataset("small").id
    n = len(confident_undecided(ws, ds_id, 0.8))
    assert n > 0
    labels = [e.label for e in at.expander]
    assert f"Accept all confident fixes ({n:,} rows)" in labels
    at.selectbox(key="f_prop").set_value("yes").run()
    assert any(label.startswith("Why this fix is") for label in [e.label for e in at.expander])
    assert any("(eta; no calibration)" in c.value for c in at.caption)  # the rule in force
    assert at.button(key="accept_confident").disabled  # nothing happens before the confirm step
    at.checkbox(key="accept_confident_ok").check().run()
    at.button(key="accept_confident").click().run()
    assert not at.exception
    decided = ws.current_decisions(ds_id)
    assert len(decided) == n and set(decided["action"]) == {"accept"}
    assert len(confident_undecided(ws, ds_id, 0.8)) == 0


def test_calibration_reports_progress_before_proposing(scored, tiny_backend):
    from clear_core import filtering
    from clear_core.correct.run import CALIBRATE, PROPOSE

    ws, score_run = scored
    seen = []
    correct.run_correction(ws, "small", CorrectConfig(batch_size=4, max_new_tokens=2, calibration_rows=4),
                           score_run=score_run, thresholds=filtering.run_thresholds(ws, score_run),
                           backend=tiny_backend, progress=lambda p: seen.append((p.stage, p.done, p.total)))
    stages = [st for st, _, _ in seen]
    assert stages[0] == CALIBRATE and PROPOSE in stages
    assert stages.index(PROPOSE) > max(i for i, st in enumerate(stages) if st == CALIBRATE)
    assert {t for st, _, t in seen if st == CALIBRATE} == {8}  # 4 corrupted rows and 4 controls
