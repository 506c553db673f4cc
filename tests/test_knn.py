"""signals.knn.nearest against a brute-force reference: a full sort of every similarity, most similar first, equal
similarities by base position, the excluded row left out."""

from __future__ import annotations

import numpy as np
import pytest

from clear_core.signals import knn


def _reference(query_unit, base_unit, k, exclude=None):
    out, sims = [], []
    for i, q in enumerate(np.asarray(query_unit, dtype=np.float64)):
        sim = np.asarray(base_unit, dtype=np.float64) @ q
        order = [j for j in np.lexsort((np.arange(len(sim)), -sim)) if exclude is None or j != exclude[i]]
        kk = min(k, len(base_unit) - (exclude is not None))
        out.append(order[:kk])
        sims.append(sim[order[:kk]])
    return np.array(out, dtype=np.int64).reshape(len(query_unit), -1), np.array(sims).reshape(len(query_unit), -1)


def test_unit_centres_and_normalises():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]])
    u = knn.unit(x)
    np.testing.assert_allclose(u[0], [0.6, 0.8])
    np.testing.assert_allclose(u[1], [0, 0])  # a zero row stays zero
    cu, mean = knn.centred_unit(x)
    np.testing.assert_allclose(mean, x.mean(0))
    np.testing.assert_allclose(cu, knn.unit(x, x.mean(0)))
    np.testing.assert_allclose(np.linalg.norm(cu, axis=1), 1.0)


@pytest.mark.parametrize("k", [1, 3, 7, 50])
def test_nearest_matches_a_full_sort(k, monkeypatch):
    monkeypatch.setattr(knn, "BLOCK", 16)  # several query blocks
    rng = np.random.default_rng(k)
    base, _ = knn.centred_unit(rng.normal(size=(40, 6)))
    queries = knn.unit(rng.normal(size=(37, 6)))
    idx, sim = knn.nearest(queries, base, k, return_sim=True)
    ref, ref_sim = _reference(queries, base, k)
    np.testing.assert_array_equal(idx, ref)  # k larger than the base: every row, still in order
    np.testing.assert_allclose(sim, ref_sim, atol=1e-12)
    assert idx.shape == (37, min(k, 40))


def test_exclude_leaves_out_each_query_its_own_row():
    rng = np.random.default_rng(1)
    base, _ = knn.centred_unit(rng.normal(size=(30, 5)))
    exclude = np.arange(30)
    idx = knn.nearest(base, base, 4, exclude=exclude)
    np.testing.assert_array_equal(idx, _reference(base, base, 4, exclude)[0])
    assert not (idx == exclude[:, None]).any()
    # -1 excludes nothing: the query's own row (similarity 1) comes first
    mixed = np.where(np.arange(30) % 2 == 0, -1, exclude)
    idx = knn.nearest(base, base, 4, exclude=mixed)
    np.testing.assert_array_equal(idx, _reference(base, base, 4, [None if e < 0 else e for e in mixed])[0])
    assert (idx[::2, 0] == np.arange(0, 30, 2)).all()
    # k capped at the rows left once one is excluded
    assert knn.nearest(base[:3], base[:3], 10, exclude=np.arange(3)).shape == (3, 2)
    assert knn.nearest(base[:1], base[:1], 5, exclude=np.arange(1)).shape == (1, 0)


def test_equal_similarities_are_ordered_by_position_even_at_the_cut():
    # duplicated base rows: many exact ties, also at the k-th place, where a partial sort picks any of them
    rng = np.random.default_rng(2)
    distinct = knn.unit(rng.normal(size=(4, 3)))
    base = distinct[rng.integers(0, 4, size=60)]
    queries = knn.unit(rng.normal(size=(25, 3)))
    for k in (1, 5, 17, 59):
        idx = knn.nearest(queries, base, k)
        np.testing.assert_array_equal(idx, _reference(queries, base, k)[0])
        excl = rng.integers(0, 60, size=25)
        np.testing.assert_array_equal(knn.nearest(queries, base, k, exclude=excl),
                                      _reference(queries, base, k, excl)[0])


def test_float32_inputs_and_empty_queries():
    rng = np.random.default_rng(3)
    base = knn.unit(rng.normal(size=(20, 4))).astype(np.float32)
    q = base[:5]
    idx, sim = knn.nearest(q, base, 3, return_sim=True)
    assert sim.dtype == np.float64 and (idx[:, 0] == np.arange(5)).all()
    np.testing.assert_array_equal(idx, _reference(q, base, 3)[0])
    assert knn.nearest(np.zeros((0, 4)), base, 3).shape == (0, 3)
