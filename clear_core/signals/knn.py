"""The project's one nearest-neighbour search over embeddings (cosine similarity).

Every user of neighbours goes through here: the dataset signals (neighbors, form, likelihood_rel), the in-context
examples of `likelihood_ctx` and the worked examples of Auto-Correct's candidates. Vectors are centred on the base
set's mean and L2-normalised once (`unit`), so cosine similarity is a dot product.

`nearest(query_unit, base_unit, k, exclude)` returns, per query, the positions of the k most similar base rows,
most similar first (ties by position, so results are reproducible), with row `exclude[i]` never returned for query
i. Queries are processed in blocks so the similarity matrix never holds more than BLOCK x n floats.
"""

from __future__ import annotations

import numpy as np

BLOCK = 2048  # queries per similarity block


def unit(x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows of x minus `mean` (0 when None), L2-normalised (float64); a zero row stays zero."""
    z = np.asarray(x, dtype=np.float64)
    if mean is not None:
        z = z - mean
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def centred_unit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows centred on their own mean, that mean): the base set of a search."""
    z = np.asarray(x, dtype=np.float64)
    mean = z.mean(axis=0) if len(z) else np.zeros(z.shape[1:], dtype=np.float64)
    return unit(z, mean), mean


def nearest(query_unit: np.ndarray, base_unit: np.ndarray, k: int, exclude: np.ndarray | None = None,
            return_sim: bool = False):
    """(n_query, k') positions into base_unit of the most cosine-similar rows, most similar first.

    k' = min(k, len(base) - (exclude is not None)). exclude[i] (a base position, or -1 for none) is never returned
    for query i. With return_sim, also the (n_query, k') similarities.
    """
    query_unit = np.asarray(query_unit)
    base_unit = np.asarray(base_unit)
    k = max(0, min(int(k), len(base_unit) - (exclude is not None)))
    idx = np.empty((len(query_unit), k), dtype=np.int64)
    sims = np.empty((len(query_unit), k), dtype=np.float64)
    if k == 0:
        return (idx, sims) if return_sim else idx
    for s in range(0, len(query_unit), BLOCK):
        sim = np.asarray(query_unit[s:s + BLOCK] @ base_unit.T, dtype=np.float64)
        if exclude is not None:
            ex = np.asarray(exclude[s:s + BLOCK], dtype=np.int64)
            hit = ex >= 0
            sim[np.flatnonzero(hit), ex[hit]] = -np.inf
        part = _top(sim, k)
        part_sim = np.take_along_axis(sim, part, axis=1)
        # most similar first; equal similarities by base position (np.lexsort: last key is primary)
        order = np.lexsort((part, -part_sim), axis=1)
        idx[s:s + BLOCK] = np.take_along_axis(part, order, axis=1)
        sims[s:s + BLOCK] = np.take_along_axis(part_sim, order, axis=1)
    return (idx, sims) if return_sim else idx


def _top(sim: np.ndarray, k: int) -> np.ndarray:
    """(n, k) positions of each row's k largest values, unordered; of values equal to the k-th largest, those
    at the lowest positions (a partial sort alone picks any of them)."""
    n, m = sim.shape
    if k >= m:
        return np.tile(np.arange(m), (n, 1))
    part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(sim, part, axis=1).min(axis=1, keepdims=True)
    above, tied = sim > kth, sim == kth
    slots = k - above.sum(axis=1, keepdims=True)
    if (tied.sum(axis=1, keepdims=True) > slots).any():  # a tie straddles the cut
        take = above | (tied & (np.cumsum(tied, axis=1) <= slots))
        part = np.nonzero(take)[1].reshape(n, k)
    return part
