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


# ---- the approximate index (above knn.CONFIG.exact_max_rows), forced on small sets ----

def _ann(monkeypatch, **kw):
    """Force the index on any base (lists of 16 rows, so that a probe sees a small share of a few hundred)."""
    monkeypatch.setattr(knn, "CONFIG", knn.KnnConfig(**{"exact_max_rows": 0, "list_size": 16, **kw}))


@pytest.fixture(scope="module")
def sample_rows(tiny_model_dir):
    """sample_data's rows embedded by the tiny model (the pipeline's embedding code): prompt and response
    embeddings, prompts, responses and whether each row is clean (demo_labels.csv)."""
    import csv
    import json

    from clear_core.backends import load_backend

    from conftest import SAMPLE

    if not SAMPLE.exists():
        pytest.skip("sample_data/demo.jsonl has not been generated")
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    with (SAMPLE.parent / "demo_labels.csv").open(encoding="utf-8") as fh:
        clean = {r["id"]: r["noise"] == "clean" for r in csv.DictReader(fh)}
    prompts = [f"{r['instruction']}\n{r.get('input', '')}" for r in rows]
    responses = [r["output"] for r in rows]
    backend = load_backend(str(tiny_model_dir), device="cpu")

    def embed(texts):  # cut: the tiny model's embeddings of the first words are enough for a neighbour structure
        return np.concatenate([backend.embed([t[:300] for t in texts[s:s + 64]], layers=(1, -1))
                               for s in range(0, len(texts), 64)])

    return dict(prompt_emb=embed(prompts), response_emb=embed(responses), responses=responses,
                prompts=[({"role": "user", "content": p},) for p in prompts],
                clean=np.array([clean[r["id"]] for r in rows]))


@pytest.fixture(scope="module")
def sample_units(sample_rows):
    return np.asarray(knn.centred_unit(sample_rows["prompt_emb"])[0])


def _recall(sims, exact_sims):
    """A returned row counts when its exact similarity reaches the k-th exact one (ties at the cut are equal)."""
    return float(np.mean(sims >= exact_sims[:, -1:] - 1e-9))


def test_index_recall_against_exact_on_real_embeddings(sample_units, monkeypatch):
    n = len(sample_units)
    exact_idx, exact_sim = knn.nearest(sample_units, sample_units, 10, exclude=np.arange(n), return_sim=True)
    _ann(monkeypatch)
    base = sample_units.copy()  # a fresh array: its own index
    idx, sim = knn.nearest(base, base, 10, exclude=np.arange(n), return_sim=True)
    assert knn._INDEXES[id(base)].ivf.nlist > 1  # the index was used, with several lists
    assert _recall(sim, exact_sim) >= 0.95
    # similarities are the exact ones of the rows returned, ordered as the exact search orders them
    np.testing.assert_allclose(sim, np.einsum("nd,nkd->nk", base, base[idx]), atol=1e-6)
    assert (np.diff(sim, axis=1) <= 1e-12).all()


def test_index_is_reproducible(sample_units, monkeypatch):
    import faiss

    _ann(monkeypatch)
    runs = []
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        base = sample_units.copy()
        runs.append(knn.nearest(base[:50], base, 7, return_sim=True))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_the_all_rows_self_search_is_reproducible_and_matches_the_query_search(sample_units, monkeypatch):
    """The self-search takes candidates a list at a time (matrix products on numpy's BLAS threads): the same
    neighbours run after run, nearly the same with another thread count (faiss's k-means sums in parallel, so the
    list centres can differ in their last bits), and about the ones a query-by-query search finds."""
    import faiss
    from threadpoolctl import threadpool_limits

    _ann(monkeypatch)
    n = len(sample_units)
    runs = []
    for threads in (2, 2, 1):
        faiss.omp_set_num_threads(threads)
        with threadpool_limits(threads):
            base = sample_units.copy()  # a fresh array: a fresh index
            runs.append(knn.nearest(base, base, 10, exclude=np.arange(n), return_sim=True))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert np.mean(runs[0][0] == runs[2][0]) >= 0.98
    faiss.omp_set_num_threads(2)
    index = knn._INDEXES[id(base)]
    queried = index.nearest(base.copy(), 10, np.arange(n))  # not the base array itself: faiss's search per query
    exact_sim = knn._exact(base, base, 10, np.arange(n))[1]
    assert _recall(runs[2][1], exact_sim) >= 0.95 and _recall(queried[1], exact_sim) >= 0.95
    assert np.mean(runs[2][0] == queried[0]) >= 0.9


def test_index_keeps_exclude_semantics(sample_units, monkeypatch):
    _ann(monkeypatch)
    base = sample_units.copy()
    n = len(base)
    exclude = np.arange(n)
    idx = knn.nearest(base, base, 5, exclude=exclude)
    assert idx.shape == (n, 5) and not (idx == exclude[:, None]).any()
    assert all(len(set(row)) == 5 for row in idx)  # no row twice
    # -1 excludes nothing: a row is its own nearest
    mixed = np.where(exclude % 2 == 0, -1, exclude)
    idx, sim = knn.nearest(base, base, 5, exclude=mixed, return_sim=True)
    np.testing.assert_allclose(sim[::2, 0], 1.0, atol=1e-6)  # itself (or an identical prompt before it)
    assert (idx[::2] == np.arange(0, n, 2)[:, None]).any(axis=1).all() and not (idx[1::2] == exclude[1::2, None]).any()
    # queries from outside the base, excluding a given base row each
    q = knn.unit(base[:20] + 0.01)
    ex = np.arange(20)[::-1].copy()
    assert not (knn.nearest(q, base, 4, exclude=ex) == ex[:, None]).any()
    # k capped at the rows left once one is excluded
    small = base[:3].copy()
    assert knn.nearest(small, small, 10, exclude=np.arange(3)).shape == (3, 2)


def test_one_index_and_one_self_search_per_base_across_threads(sample_units, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    _ann(monkeypatch)
    base = sample_units.copy()
    n = len(base)
    builds = []
    real = knn._Index.__init__

    def counting(self, *a, **kw):
        builds.append(1)
        real(self, *a, **kw)

    monkeypatch.setattr(knn._Index, "__init__", counting)
    with ThreadPoolExecutor(4) as pool:
        out = list(pool.map(lambda _: knn.nearest(base, base, 10, exclude=np.arange(n)), range(8)))
    assert len(builds) == 1
    for o in out[1:]:
        np.testing.assert_array_equal(o, out[0])
    # a smaller k reuses the self-search: the same rows as a fresh index gives
    fresh = base.copy()
    np.testing.assert_array_equal(knn.nearest(base, base, 4, exclude=np.arange(n)),
                                  knn.nearest(fresh, fresh, 4, exclude=np.arange(n)))


def test_large_inputs_are_float32_and_shared(monkeypatch):
    monkeypatch.setattr(knn, "CONFIG", knn.KnnConfig(exact_max_rows=10))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 8)).astype(np.float32)
    u, mean = knn.centred_unit(x)
    assert u.dtype == np.float32 and not u.flags.writeable
    assert knn.centred_unit(x)[0] is u  # every signal centring the same embeddings gets the same array
    np.testing.assert_allclose(u, knn.unit(x.astype(np.float64), x.astype(np.float64).mean(0)), atol=1e-6)
    small = rng.normal(size=(5, 8))
    assert knn.unit(small).dtype == np.float64 and knn.centred_unit(small)[0] is not knn.centred_unit(small)[0]


def test_dataset_signals_keep_their_auroc_on_the_index_path(sample_rows, monkeypatch):
    """neighbors and form over sample_data with the index forced (and the classifier's rows capped) against the
    exact defaults: the AUROC of each signal for the sample's injected noise moves by at most 0.005."""
    from sklearn.metrics import roc_auc_score

    from clear_core.signals import dataset

    def aurocs():
        rows = dataset.Rows(sample_rows["prompt_emb"].copy(), sample_rows["response_emb"].copy(),
                            sample_rows["prompts"], sample_rows["responses"])
        fitted = dataset.fit(("neighbors", "form"), rows)
        return {name: roc_auc_score(sample_rows["clean"], v) for name, v in fitted.values.items()}

    exact = aurocs()
    _ann(monkeypatch)
    assert knn._large(len(sample_rows["responses"]))
    approx = aurocs()
    assert set(exact) == {"neighbors", "form"}
    for name in exact:
        assert abs(approx[name] - exact[name]) <= 0.005, (name, exact[name], approx[name])


def test_centred_unit_in_place_reuses_the_array_and_gives_the_same_units(monkeypatch):
    monkeypatch.setattr(knn, "CONFIG", knn.KnnConfig(exact_max_rows=10))
    x = np.random.default_rng(3).normal(size=(70_000, 8)).astype(np.float32) + 2.0  # more than one block
    want, want_mean = knn.centred_unit(x.copy())
    given = x.copy()
    got, mean = knn.centred_unit(given, in_place=True)
    assert got is given and not got.flags.writeable
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(mean, want_mean)
    assert knn.centred_unit(given)[0] is got  # shared with later callers, like any other result
    kept = x.copy()  # without in_place (or for a read-only or float64 input) the input is left alone
    assert knn.centred_unit(kept)[0] is not kept and np.array_equal(kept, x)


def test_neighbors_overwrite_gives_the_same_values_and_reuses_both_matrices(monkeypatch):
    """A large fit that may overwrite its embeddings (the pipeline's) scores every row as one that may not, the
    classifier reading the prompt embeddings before they become unit vectors, and holds no second matrix of
    either; form then shares the prompts' unit vectors."""
    from clear_core.signals import form, neighbors

    _ann(monkeypatch)
    rng = np.random.default_rng(5)
    n = 600
    centres = rng.normal(size=(3, 16))
    label = rng.integers(3, size=n)
    pe = (centres[label] + 0.5 * rng.normal(size=(n, 16))).astype(np.float32) + 1.0
    re_ = rng.normal(size=(n, 16)).astype(np.float32)
    responses = [("neg", "neu", "pos")[c] for c in label]
    responses[:120] = [f"a free-text answer number {i}" for i in range(120)]  # mixed: the "other" class too
    assert knn._large(n)
    _, want = neighbors.fit(pe.copy(), re_.copy(), responses)
    p_given, r_given = pe.copy(), re_.copy()
    model, got = neighbors.fit(p_given, r_given, responses, overwrite=True)
    np.testing.assert_allclose(got.values, want.values, atol=1e-9)
    assert model.prompt_unit is p_given and model.response_unit is r_given
    np.testing.assert_allclose(p_given, knn.unit(pe, pe.mean(axis=0)), atol=1e-5)
    assert form.fit(p_given, [[{"role": "user", "content": "q"}]] * n, responses)[0].prompt_unit is p_given
