import numpy as np
import pytest

from clear_core import calibrate
from clear_core.calibrate import CalibrationError
from clear_core.config import PRESETS
from clear_core.errors import UnknownNameError
from clear_core.signals import combine


def test_confidence_weighted_mean_ignores_missing_signals():
    values = {"a": np.array([1.0, 0.0, np.nan, np.nan]), "b": np.array([0.0, 1.0, 0.5, np.nan]),
              "c": np.array([0.3, 0.3, 0.3, 0.3])}
    out = combine.confidence(values, {"a": 3.0, "b": 1.0, "z": 5.0}, "arithmetic")  # "c" unweighted, "z" absent
    np.testing.assert_allclose(out[:3], [0.75, 0.25, 0.5])
    assert np.isnan(out[3])  # no weighted signal present for that row
    geo = combine.confidence(values, {"a": 3.0, "b": 1.0, "z": 5.0})  # the default: geometric
    floor = combine.FLOOR
    np.testing.assert_allclose(geo[:3], [floor ** 0.25, floor ** 0.75, 0.5])  # a 0 counts as FLOOR
    assert np.isnan(geo[3])
    # one signal sure the row is bad pulls the geometric mean far below the arithmetic one
    pair = {"x": np.array([0.9, 0.5]), "y": np.array([0.01, 0.5])}
    a, g = combine.confidence(pair, {"x": 1, "y": 1}, "arithmetic"), combine.confidence(pair, {"x": 1, "y": 1})
    assert g[0] == pytest.approx(np.sqrt(0.009)) and a[0] == pytest.approx(0.455) and g[1] == pytest.approx(0.5)
    with pytest.raises(UnknownNameError):
        combine.confidence(pair, {"x": 1}, "median")


def test_confidence_stays_in_unit_interval_and_preset_weights():
    rng = np.random.default_rng(0)
    values = {n: np.where(rng.random(100) < 0.2, np.nan, rng.random(100)) for n in ("likelihood", "reflection", "neighbors")}
    for preset in PRESETS:
        out = combine.confidence(values, combine.preset_weights(preset))
        ok = ~np.isnan(out)
        assert ok.sum() > 90 and np.all((out[ok] >= 0) & (out[ok] <= 1))
    with pytest.raises(UnknownNameError):
        combine.preset_weights("nope")
    with pytest.raises(ValueError):
        combine.confidence(values, {"likelihood": -1.0})
    with pytest.raises(ValueError):
        combine.confidence(values, {"other": 1.0})


def _two_signals(n=300, seed=0):
    rng = np.random.default_rng(seed)
    good = rng.random(n) < 0.6
    informative = np.clip(np.where(good, 0.7, 0.35) + rng.normal(0, 0.12, n), 0, 1)
    noise = rng.random(n)
    return {"informative": informative, "noise": noise}, good


def test_calibration_from_decisions_recovers_informative_signal():
    values, good = _two_signals()
    actions = np.where(good, "keep", "drop")
    actions[:10] = "note"  # unknown actions are ignored
    cal = calibrate.from_decisions(values, actions)
    assert cal.method == "decisions"
    assert cal.weights["informative"] > 0.8 and cal.weights["informative"] > 4 * cal.weights["noise"]
    assert sum(cal.weights.values()) == pytest.approx(1.0) and min(cal.weights.values()) >= 0
    assert cal.auroc["informative"] > 0.9 and abs(cal.auroc["noise"] - 0.5) < 0.1
    assert cal.auroc_confidence > 0.9


def test_calibration_drops_a_signal_that_points_the_wrong_way():
    values, good = _two_signals(seed=1)
    values["inverted"] = 1 - values["informative"] + np.random.default_rng(3).normal(0, 0.3, len(good))
    cal = calibrate.fit_weights(values, good)
    assert cal.weights["inverted"] == 0.0 and cal.weights["informative"] > 0.5


def test_calibration_from_decisions_needs_both_kinds():
    values, good = _two_signals(n=40)
    actions = ["keep"] * 38 + ["drop"] * 2
    with pytest.raises(CalibrationError, match="2 dropped"):
        calibrate.from_decisions({k: v[:40] for k, v in values.items()}, actions)


def _model_kinds(bad):
    """The swaps, truncations and echoes (the text defects and wrong facts are tested below and in
    test_calibrate_facts.py)."""
    return [b for b in bad if b["kind"] not in calibrate.DEFECT_KINDS + (calibrate.FACT_KIND,)]


def test_corruptions_swap_to_a_different_answer_truncate_and_echo():
    rows = [{"prompt": f"q{i}", "response": ("yes" if i % 2 else "no")} for i in range(30)]
    bad = _model_kinds(calibrate.make_corruptions(rows, n=20, seed=0))
    swaps = [b for b in bad if b["kind"] == "swap"]
    assert len(swaps) == 20 and {b["kind"] for b in bad} == {"swap", "echo"}
    assert all(b["response"] != rows[b["source_row"]]["response"] for b in bad)
    assert all(b["prompt"] == rows[b["source_row"]]["prompt"] for b in bad)
    # an echo is a run of the prompt's own words, as long as the response
    assert all(b["response"] == rows[b["source_row"]]["prompt"] for b in bad if b["kind"] == "echo")
    long_rows = [{"prompt": f"q{i}", "response": f"a long answer number {i} with many words in it"} for i in range(10)]
    kinds = {b["kind"] for b in _model_kinds(calibrate.make_corruptions(long_rows, n=10))}
    assert kinds == {"swap", "truncate", "echo"}
    chat = [{"prompt": [{"role": "system", "content": "be brief"},
                        {"role": "user", "content": f"Give the antonym of the word 'w{i}'."}],
             "response": f"x{i}"} for i in range(10)]
    echoes = [b for b in calibrate.make_corruptions(chat, n=10) if b["kind"] == "echo"]
    assert len(echoes) == 10
    for b in echoes:
        user = b["prompt"][-1]["content"].split()
        assert len(b["response"].split()) == 1 and b["response"] in user  # from the user turn, not the system one
    # rows whose response is a class label get label flips only (no echo, no cut label)
    mixed = long_rows + rows
    flags = [False] * len(long_rows) + [True] * len(rows)
    bad = _model_kinds(calibrate.make_corruptions(mixed, n=len(mixed), labels_only=flags))
    assert {b["kind"] for b in bad if flags[b["source_row"]]} == {"swap"}
    assert {b["kind"] for b in bad if not flags[b["source_row"]]} == {"swap", "truncate", "echo"}
    with pytest.raises(CalibrationError):
        calibrate.make_corruptions([{"prompt": "a", "response": "same"}] * 5)


def test_label_free_calibration_weights_the_signal_that_separates_corruptions():
    rng = np.random.default_rng(0)
    n = 200
    rows = [{"prompt": f"question {i}", "response": f"answer {i} " + "word " * (i % 9)} for i in range(n)]
    # the dataset's own values: "sharp" is high for the original pairs, "blind" is uninformative
    values = {"sharp": np.clip(0.75 + rng.normal(0, 0.1, n), 0, 1), "blind": rng.random(n)}
    calls = []

    def score_rows(bad_rows):  # a stand-in scorer: "sharp" sees that the response is not the row's own
        calls.append(len(bad_rows))
        m = len(bad_rows)
        return {"sharp": np.clip(0.35 + rng.normal(0, 0.1, m), 0, 1), "blind": rng.random(m)}

    cal = calibrate.label_free(rows, values, score_rows, n=80, seed=1)
    assert calls and calls[0] == cal.n_bad and cal.n_good == 80
    assert cal.method == "synthetic" and cal.kinds["swap"] == 80 and cal.kinds["truncate"] > 0
    assert cal.weights["sharp"] > 0.8
    assert cal.auroc["sharp"] > 0.95 and cal.auroc_confidence > 0.95
    assert isinstance(cal.to_dict()["weights"], dict)


def test_label_free_rejects_wrong_length_from_scorer():
    rows = [{"prompt": f"q{i}", "response": f"r{i}"} for i in range(20)]
    with pytest.raises(ValueError):
        calibrate.label_free(rows, {"s": np.ones(20)}, lambda b: {"s": np.ones(3)}, n=10)


def test_a_stored_config_keeps_its_mean_and_an_old_one_reads_as_arithmetic():
    import json

    from clear_core.config import ScoreConfig, preset_config

    cfg = preset_config("balanced")
    assert cfg.mean == "geometric" and ScoreConfig.from_dict(json.loads(cfg.to_json())) == cfg
    old = {k: v for k, v in json.loads(cfg.to_json()).items() if k != "mean"}  # stored before `mean` existed
    assert ScoreConfig.from_dict(old).mean == "arithmetic"


def test_text_defects_leave_the_other_corruptions_unchanged_and_are_caught_by_their_signals():
    from clear_core.signals import dataset, get_signal

    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + {i + 1}?"}],
             "response": f"We add: {i} + {i + 1} = {2 * i + 1}. The sum is {2 * i + 1}."} for i in range(80)]
    bad = calibrate.make_corruptions(rows, n=60, seed=0)
    defects = [b for b in bad if b["kind"] in calibrate.DEFECT_KINDS]
    # one defect for every other sampled row, and none for label-only rows
    assert 20 <= len(defects) <= 30 and {b["kind"] for b in defects} == set(calibrate.DEFECT_KINDS)
    only_labels = calibrate.make_corruptions(rows, n=60, seed=0, labels_only=[True] * 80)
    assert not [b for b in only_labels if b["kind"] in calibrate.DEFECT_KINDS]
    # the swaps, truncations and echoes are the same rows as they would be without the defects
    assert _model_kinds(bad) == [b for b in bad if b["kind"] in ("swap", "truncate", "echo")]
    assert [b["source_row"] for b in _model_kinds(bad)] == [b["source_row"] for b in _model_kinds(
        calibrate.make_corruptions(rows, n=60, seed=0))]
    signal_of = {"append": "appended", "placeholder": "placeholder", "unseen": "unseen_input",
                 "artifact": "artifacts", "arith": "arithmetic"}
    base = dataset.Rows(np.zeros((80, 2)), np.zeros((80, 2)), [r["prompt"] for r in rows],
                        [r["response"] for r in rows])
    for kind, name in signal_of.items():
        these = [b for b in defects if b["kind"] == kind]
        fitted = get_signal(name).compute(base)
        assert fitted.values.min() == 1.0        # the clean rows never fire
        queries = dataset.Rows(np.zeros((len(these), 2)), np.zeros((len(these), 2)), [b["prompt"] for b in these],
                               [b["response"] for b in these])
        caught = fitted.score(queries, np.array([b["source_row"] for b in these]))
        assert (caught < 1.0).mean() >= 0.8, (kind, caught)
