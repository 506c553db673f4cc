"""The project's one nearest-neighbour search over embeddings (cosine similarity).

Every user of neighbours goes through here: the dataset signals (neighbors, form, likelihood_rel), the in-context
examples of `likelihood_ctx` and the worked examples of Auto-Correct's candidates. Vectors are centred on the base
set's mean and L2-normalised once (`unit`), so cosine similarity is a dot product.

`nearest(query_unit, base_unit, k, exclude)` returns, per query, the positions of the k most similar base rows,
most similar first (ties by position, so results are reproducible), with row `exclude[i]` never returned for query
i. It is the one entry point, safe to call from several threads, and picks the method by the base's size:

* up to `CONFIG.exact_max_rows` base rows, an exact search: queries in blocks, so the similarity matrix never holds
  more than BLOCK x n floats. Small datasets get exactly the neighbours they always got.
* above it, an approximate index (faiss IVF-Flat) over the base projected on its first `pca_dims` principal axes,
  built once per base array and kept while that array lives. It proposes `candidates` rows per query; those are
  re-ranked by their exact similarity on the full vectors, ties by position, as in the exact search.
  The all-rows self-search (the base against itself) takes each list's candidates in one matrix product against
  the lists nearest its centre. The sample, the PCA and the k-means use fixed seeds and the search within the
  probed lists is exact, so two runs on the same thread count give the same neighbours (faiss's k-means sums in
  parallel, so another thread count can move list centres in their last bits and a few borderline neighbours).
  The crossover row count, the library choice and the recall are measured in bench/scale.py
  (bench/results/scale.md).

Above the threshold `unit` and `centred_unit` return float32 (half the memory of a million rows), and
`centred_unit` of the same input array returns the same (read-only) result, so that the dataset signals that each
centre the prompt embeddings share one array, one index and one self-search.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

BLOCK = 2048  # queries per similarity block


@dataclass(frozen=True)
class KnnConfig:
    """How `nearest` searches. Tests may swap the module's CONFIG (e.g. exact_max_rows=0 forces the index)."""

    exact_max_rows: int = 12_000  # base rows up to which the search is exact (the measured crossover)
    pca_dims: int = 128  # dimensions the index searches in (the re-ranking uses all of them)
    list_size: int = 256  # base rows per IVF list (lists = n / list_size): the work per query stays constant
    nprobe: int = 8  # lists scanned per query
    candidates: int = 3  # candidates proposed per wanted neighbour, re-ranked exactly
    # The all-rows self-search takes each list's candidates from the lists nearest its centre, not each row's
    # own nearest lists: more lists make up for the rows far from their centre.
    self_probe: int = 12
    train_rows: int = 64  # k-means training rows per list (a fixed-seed sample)
    pca_rows: int = 65_536  # rows of that sample the principal axes are fitted on
    seed: int = 0


CONFIG = KnnConfig()
_LOCK = threading.Lock()
_INDEXES: dict[int, "_Index"] = {}  # id(base array) -> its index, dropped when the array is collected
_CENTRED: dict[int, tuple] = {}  # id(input array) -> centred_unit's result, likewise


def _large(n: int) -> bool:
    return n > CONFIG.exact_max_rows


def unit(x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows of x minus `mean` (0 when None), L2-normalised (float64; float32 above CONFIG.exact_max_rows rows);
    a zero row stays zero."""
    dtype = np.float32 if _large(len(x)) else np.float64
    z = np.array(x, dtype=dtype)  # a copy: normalised in place below
    if mean is not None:
        z -= np.asarray(mean, dtype=dtype)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12).astype(dtype)
    return z


def centred_unit(x: np.ndarray, in_place: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows centred on their own mean, that mean): the base set of a search.

    in_place: above CONFIG.exact_max_rows, a writeable float32 x is turned into the unit rows itself (no second
    matrix: a million 576-d rows are 2.3 GB) and returned, read-only; only for an array nobody reads again."""
    if not _large(len(x)):
        z = np.asarray(x, dtype=np.float64)
        mean = z.mean(axis=0) if len(z) else np.zeros(z.shape[1:], dtype=np.float64)
        return unit(z, mean), mean
    with _LOCK:
        hit = _CENTRED.get(id(x))
        if hit is not None and hit[0]() is x:
            return hit[1], hit[2]
    mean = np.asarray(x).mean(axis=0, dtype=np.float64)
    if in_place and isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.writeable \
            and x.flags.c_contiguous:
        out = x
        for s in range(0, len(x), 65536):  # a block at a time: no full-size temporary
            block = out[s:s + 65536]
            block -= mean.astype(np.float32)
            block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
    else:
        out = unit(x, mean)
    out.flags.writeable = False  # shared by every caller of the same input
    with _LOCK:
        _CENTRED[id(x)] = (weakref.ref(x), out, mean)
        weakref.finalize(x, _CENTRED.pop, id(x), None)
    return out, mean


def nearest(query_unit: np.ndarray, base_unit: np.ndarray, k: int, exclude: np.ndarray | None = None,
            return_sim: bool = False):
    """(n_query, k') positions into base_unit of the most cosine-similar rows, most similar first.

    k' = min(k, len(base) - (exclude is not None)). exclude[i] (a base position, or -1 for none) is never returned
    for query i. With return_sim, also the (n_query, k') similarities.
    """
    k = max(0, min(int(k), len(base_unit) - (exclude is not None)))
    if k == 0 or not _large(len(base_unit)):
        idx, sims = _exact(np.asarray(query_unit), np.asarray(base_unit), k, exclude)
    else:
        idx, sims = _index(base_unit).nearest(query_unit, k, exclude)
    return (idx, sims) if return_sim else idx


def _exact(query_unit: np.ndarray, base_unit: np.ndarray, k: int, exclude) -> tuple[np.ndarray, np.ndarray]:
    idx = np.empty((len(query_unit), k), dtype=np.int64)
    sims = np.empty((len(query_unit), k), dtype=np.float64)
    if k == 0:
        return idx, sims
    for s in range(0, len(query_unit), BLOCK):
        sim = np.asarray(query_unit[s:s + BLOCK] @ base_unit.T, dtype=np.float64)
        if exclude is not None:
            ex = np.asarray(exclude[s:s + BLOCK], dtype=np.int64)
            hit = ex >= 0
            sim[np.flatnonzero(hit), ex[hit]] = -np.inf
        part = _top(sim, k)
        idx[s:s + BLOCK], sims[s:s + BLOCK] = _ordered(part, np.take_along_axis(sim, part, axis=1))
    return idx, sims


def _ordered(part: np.ndarray, part_sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's positions most similar first, equal similarities by position (np.lexsort: last key is primary)."""
    order = np.lexsort((part, -part_sim), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_sim, order, axis=1)


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


def _index(base_unit: np.ndarray) -> "_Index":
    """The index of this base array, built on first use (under the lock: one build, whichever thread asks)."""
    with _LOCK:
        found = _INDEXES.get(id(base_unit))
        if found is None or found.base() is not base_unit or found.config != CONFIG:
            found = _Index(base_unit, CONFIG)
            _INDEXES[id(base_unit)] = found
            weakref.finalize(base_unit, _INDEXES.pop, id(base_unit), None)
        return found


class _Index:
    """faiss IVF-Flat over the PCA-projected base; `nearest` re-ranks its candidates on the full vectors."""

    def __init__(self, base_unit: np.ndarray, config: KnnConfig):
        import faiss

        self.base, self.config = weakref.ref(base_unit), config
        n, d = base_unit.shape
        rng = np.random.default_rng(config.seed)
        n_lists = max(1, n // config.list_size)
        sample = np.asarray(base_unit[np.sort(rng.choice(n, min(n, n_lists * config.train_rows), replace=False))],
                            dtype=np.float64)
        self.mean = sample.mean(axis=0)
        dims = min(config.pca_dims, d)
        # principal axes of at most pca_rows rows of the sample, evenly spaced in it: a 576 x 576 covariance needs no
        # more, and a million-row base's whole sample would be a 1 GB float64 copy twice over (eigh is
        # deterministic; its sign convention does not change dot products)
        spaced = sample[::-(-len(sample) // config.pca_rows)]
        _, vecs = np.linalg.eigh(np.cov(spaced - self.mean, rowvar=False))
        self.axes = np.ascontiguousarray(vecs[:, ::-1][:, :dims], dtype=np.float32)
        self.ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dims), dims, n_lists, faiss.METRIC_INNER_PRODUCT)
        self.ivf.cp.seed, self.ivf.cp.niter = config.seed, 10
        self.ivf.cp.max_points_per_centroid = config.train_rows
        self.ivf.cp.min_points_per_centroid = 1  # the sample is sized by train_rows; no warning below faiss's 39
        self.ivf.train(self._project(sample))
        for s in range(0, n, 65536):
            self.ivf.add(self._project(base_unit[s:s + 65536]))
        self.ivf.nprobe = min(config.nprobe, n_lists)
        self.self_hits: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # k -> the whole base's self-search
        self.lock = threading.Lock()

    def _project(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float32) - self.mean.astype(np.float32)) @ self.axes
        # cosine in the projected space: the axes left out would otherwise shrink some rows more than others
        return np.ascontiguousarray(z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12))

    def nearest(self, query_unit, k: int, exclude) -> tuple[np.ndarray, np.ndarray]:
        base = self.base()
        n = len(base)
        whole = query_unit is base and exclude is not None and len(exclude) == n \
            and np.array_equal(exclude, np.arange(n))
        if whole:  # neighbors, form and likelihood_rel each ask for this one: search once
            with self.lock:
                have = next((v for kk, v in sorted(self.self_hits.items()) if kk >= k), None)
            if have is not None:
                return have[0][:, :k].copy(), have[1][:, :k].copy()
        idx = np.empty((len(query_unit), k), dtype=np.int64)
        sims = np.empty((len(query_unit), k), dtype=np.float64)
        n_cand = min(n, max(self.config.candidates * k, k + 1))
        every = self._list_candidates(n_cand) if whole else None
        for s in range(0, len(query_unit), BLOCK):
            q = np.asarray(query_unit[s:s + BLOCK])
            cand = every[s:s + BLOCK] if whole else self.ivf.search(self._project(q), n_cand)[1]
            ex = None if exclude is None else np.asarray(exclude[s:s + BLOCK], dtype=np.int64)
            idx[s:s + BLOCK], sims[s:s + BLOCK] = self._rerank(q, base, cand, k, ex)
        if whole:
            with self.lock:
                self.self_hits[k] = (idx, sims)
            return idx.copy(), sims.copy()
        return idx, sims

    def _list_candidates(self, n_cand: int) -> np.ndarray:
        """Candidates of every base row for the self-search, a list at a time: the members of one list against
        those of the `self_probe` lists whose centres are nearest its centre, one matrix product each (a query-by-query
        scan of the lists is several times slower). Self-matches are left out; -1 pads a row with too few."""
        import faiss

        ivf, n = self.ivf, self.ivf.ntotal
        lists, d = ivf.invlists, ivf.d
        ids, vecs = [], []
        for c in range(ivf.nlist):  # views on the index's own storage (IVF-Flat keeps the float32 vectors)
            size = lists.list_size(c)
            ids.append(faiss.rev_swig_ptr(lists.get_ids(c), size).view(np.int64) if size else np.zeros(0, np.int64))
            vecs.append(faiss.rev_swig_ptr(lists.get_codes(c), size * d * 4).view(np.float32).reshape(size, d)
                        if size else np.zeros((0, d), np.float32))
        centres = ivf.quantizer.reconstruct_n(0, ivf.nlist)
        probe = min(self.config.self_probe, ivf.nlist)
        out = np.full((n, n_cand), -1, dtype=np.int64)
        for s in range(0, ivf.nlist, 256):  # the centres' nearest centres, ties by position
            block = centres[s:s + 256] @ centres.T
            block[np.arange(len(block)), np.arange(s, s + len(block))] = np.inf  # a list probes itself first
            near = _top(block, probe)
            for c, row in zip(range(s, s + len(near)), near):
                size = len(ids[c])
                if not size:
                    continue
                row = [c] + [p for p in row if p != c]
                pool_ids = np.concatenate([ids[p] for p in row])
                sim = vecs[c] @ np.concatenate([vecs[p] for p in row]).T
                sim[np.arange(size), np.arange(size)] = -np.inf  # a row is not its own candidate
                m = min(n_cand, len(pool_ids))
                # any m best will do (a deterministic choice): the re-ranking orders them exactly, ties by position
                part = np.argpartition(-sim, m - 1, axis=1)[:, :m] if m < len(pool_ids) else \
                    np.broadcast_to(np.arange(m), (size, m))
                out[ids[c], :m] = pool_ids[part]
        return out

    @staticmethod
    def _rerank(q, base, cand, k: int, exclude) -> tuple[np.ndarray, np.ndarray]:
        """The candidates' exact similarities; the k best, ordered as the exact search orders them. A query left
        with fewer than k valid candidates (lists too small) is searched exactly."""
        # in the base's precision (float32 above the threshold: half the memory traffic of the gather)
        sim = np.einsum("nd,nkd->nk", np.asarray(q, dtype=base.dtype), base[np.maximum(cand, 0)]).astype(np.float64)
        bad = cand < 0
        if exclude is not None:
            bad |= cand == exclude[:, None]
        sim[bad] = -np.inf
        short = np.flatnonzero((~bad).sum(axis=1) < k)
        idx, out = _ordered(np.maximum(cand, 0), sim)  # invalid ones (-inf) last
        idx, out = idx[:, :k], out[:, :k]
        if len(short):
            idx[short], out[short] = _exact(q[short], base, k, None if exclude is None else exclude[short])
        return idx, out
