import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench import metrics


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.random(n) < 0.3
    s = rng.normal(size=n) - 0.8 * y
    s[:40] = np.round(s[:40], 1)  # some ties
    assert metrics.auroc(s, y) == pytest.approx(roc_auc_score(y, -s), abs=1e-12)


def test_auroc_extremes_and_one_class():
    y = np.array([1, 1, 0, 0, 0], dtype=bool)
    assert metrics.auroc([0.1, 0.2, 0.5, 0.6, 0.9], y) == 1.0
    assert metrics.auroc([0.9, 0.8, 0.1, 0.2, 0.3], y) == 0.0
    assert metrics.auroc(np.ones(5), y) == 0.5
    assert np.isnan(metrics.auroc([0.1, 0.2], [False, False]))


def test_precision_recall_at_k_and_median():
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    assert metrics.precision_recall_at(s, y, 2) == (0.5, 0.5)
    assert metrics.precision_recall_at(s, y, 3) == (pytest.approx(2 / 3), 1.0)
    p, r = metrics.precision_recall_below(s, y, float(np.median(s)))
    assert (p, r) == (pytest.approx(2 / 3), 1.0)
    rep = metrics.report(s, y)
    assert rep["p_at_k"] == 0.5 and rep["r_at_k"] == 0.5 and 0 <= rep["auroc"] <= 1


def test_length_mismatch_and_nan_rejected():
    with pytest.raises(ValueError):
        metrics.auroc([0.1, 0.2], [True])
    with pytest.raises(ValueError):
        metrics.auroc([0.1, np.nan], [True, False])
