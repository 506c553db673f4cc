"""The detector cap of `confidence` (combine.veto) and what keeps stored runs combining as they did."""

import json

import numpy as np
import pytest

from clear_core.config import ScoreConfig, preset_config
from clear_core.signals import REGISTRY, combine

TEXT = ("appended", "placeholder", "unseen_input", "artifacts", "arithmetic")


def test_the_text_checks_are_the_detectors():
    assert {n for n, s in REGISTRY.items() if s.detector} == set(TEXT)


def test_a_firing_detector_caps_confidence_whatever_its_weight():
    # row 0: the soft signal trusts it, a rare placeholder fired (value 0.02); row 1: nothing fired
    values = {"neighbors": np.array([0.9, 0.9]), "placeholder": np.array([0.02, 1.0])}
    averaged = combine.confidence(values, {"neighbors": 0.95, "placeholder": 0.05}, veto=False)
    capped = combine.confidence(values, {"neighbors": 0.95, "placeholder": 0.05})
    assert averaged[0] > 0.7  # averaged in with a small weight the detector is diluted away
    assert capped[0] == pytest.approx(0.02 / combine.VETO_FULL)
    assert capped[1] == pytest.approx(averaged[1]) == pytest.approx(0.9 ** 0.95)
    # weight 0 (calibration found no row only it catches): it still caps, and only caps
    zero = combine.confidence(values, {"neighbors": 1.0, "placeholder": 0.0})
    np.testing.assert_allclose(zero, [0.02 / combine.VETO_FULL, 0.9])
    # a signal that is not a detector never caps, however low
    low = {"neighbors": np.array([0.9]), "likelihood": np.array([0.02])}
    np.testing.assert_allclose(combine.confidence(low, {"neighbors": 0.95, "likelihood": 0.05}),
                               combine.confidence(low, {"neighbors": 0.95, "likelihood": 0.05}, veto=False))


def test_a_detector_firing_on_many_rows_caps_nothing_and_missing_values_stay_missing():
    from clear_core.signals.textrules import rarity_value

    n = 100
    soft = np.linspace(0.3, 0.9, n)
    for share, capped in ((0.1, False), (0.05, False), (0.02, True)):
        fired = np.arange(n) >= n - int(share * n)  # on the rows the other signals trust most
        det = rarity_value(fired[:, None], np.array([fired.mean()]))
        out = combine.confidence({"neighbors": soft, "artifacts": det}, {"neighbors": 1.0, "artifacts": 0.0})
        assert (out[fired] < soft[fired] - 1e-9).all() == capped, share
        np.testing.assert_allclose(out[~fired], soft[~fired])
    # a NaN detector value caps nothing; a row with no weighted signal stays NaN
    values = {"neighbors": np.array([0.8, np.nan]), "arithmetic": np.array([np.nan, 0.02])}
    out = combine.confidence(values, {"neighbors": 1.0, "arithmetic": 0.0})
    assert out[0] == pytest.approx(0.8) and np.isnan(out[1])


def test_new_runs_veto_and_runs_stored_before_it_keep_averaging():
    cfg = preset_config("fast")
    assert cfg.veto and ScoreConfig.from_dict(json.loads(cfg.to_json())).veto
    old = {k: v for k, v in json.loads(cfg.to_json()).items() if k != "veto"}
    assert ScoreConfig.from_dict(old).veto is False


def test_the_scorer_recombines_a_stored_row_as_the_run_did(tmp_path):
    """Scorer.original (Auto-Correct's scorer judge) keeps a detector weighted 0 and caps as the pipeline did."""
    from clear_core.correct.scorer import Scorer

    values = {"neighbors": np.array([0.9, 0.8]), "placeholder": np.array([0.02, 1.0])}
    weights = {"neighbors": 1.0, "placeholder": 0.0}
    for veto in (True, False):
        scorer = Scorer(preset_config("fast", veto=veto), weights, None, values)
        np.testing.assert_allclose(scorer.original([0, 1]), combine.confidence(values, weights, veto=veto))
    assert Scorer(preset_config("fast"), weights, None, values).original([0])[0] < 0.1


def test_the_scorer_built_from_a_run_keeps_its_detectors_weighted_zero():
    from types import SimpleNamespace

    from clear_core.correct.scorer import Scorer

    n = 30
    rng = np.random.default_rng(0)
    prompts = [[{"role": "user", "content": f"Name a colour, {i}."}] for i in range(n)]
    responses = ["N/A" if i == 0 else f"Blue number {i}." for i in range(n)]
    values = {"neighbors": np.full(n, 0.9), "placeholder": np.r_[0.02, np.ones(n - 1)]}
    run = SimpleNamespace(config=json.loads(preset_config("fast").to_json()),
                          weights={"neighbors": 1.0, "placeholder": 0.0})
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    scorer = Scorer.build(run, values, {}, emb, emb, prompts, responses)
    assert "placeholder" in scorer.stored
    assert scorer.original([0])[0] == pytest.approx(0.02 / combine.VETO_FULL)
