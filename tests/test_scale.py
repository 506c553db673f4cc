"""The dataset stage at scale, on small sets: bench/scale.py's workspace and measurement run the pipeline's own
dataset stage (here with the index forced), and the dataset signals keep float32 embeddings instead of float64
copies (what keeps a million rows under the memory target)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from bench import scale
from clear_core.signals import dataset, knn, neighbors

TINY_DIM = 64  # the tiny model's hidden size: the calibration's synthetic rows are embedded by it


def test_bench_runs_the_dataset_stage_on_the_index_path(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(knn, "CONFIG", knn.KnnConfig(exact_max_rows=0, list_size=16))
    path = tmp_path / "scale.db"
    scale.prepare(160, path, dim=TINY_DIM)
    built = []
    real = knn._Index.__init__

    def counting(self, base, *args):
        built.append(base.shape)
        real(self, base, *args)

    monkeypatch.setattr(knn._Index, "__init__", counting)
    out = scale.measure(path, str(tiny_model_dir))  # asserts that every row got a confidence
    assert out["n"] == 160 and out["peak_gib"] > 0 and out["cpu_s"] > 0
    labels = [step[0] for step in out["steps"]]
    assert all(step[2] > 0 for step in out["steps"])  # the peak memory by the end of each step
    assert any("neighbors" in label for label in labels) and any("calibration" in label for label in labels)
    # one index over the dataset's prompts served neighbors, form and likelihood_rel
    assert built.count((160, TINY_DIM)) == 1


def test_texts_mix_labels_and_free_text():
    prompts, responses = scale.texts(0, 500, seed=0)
    labelled = np.mean([r in scale.LABELS for r in responses])
    assert 0.3 < labelled < 0.5 and len(set(prompts)) == 500
    labels, classes = neighbors.detect_classes(responses)
    assert set(classes) == set(scale.LABELS) and (labels >= 0).sum() == round(labelled * 500)


def test_dataset_signals_keep_float32_embeddings(monkeypatch):
    """Above the threshold the signals share one float32 unit copy of the prompts (float64 copies of a million
    576-d rows would be 4.6 GB each) and the classifier trains on a capped sample."""
    monkeypatch.setattr(knn, "CONFIG", knn.KnnConfig(exact_max_rows=1000))
    fits = []
    monkeypatch.setattr(neighbors, "_classifier", lambda C, seed: fits.append(1) or _Recorder(C, seed))
    monkeypatch.setattr(neighbors, "fit", functools.partial(neighbors.fit,
                                                            config=neighbors.NeighborsConfig(max_fit_rows=500)))
    n = 3000
    pe, re_ = scale.embeddings(n, seed=1, dim=32)
    prompts, responses = scale.texts(0, n, seed=1)
    rows = dataset.Rows(pe, re_, [({"role": "user", "content": p},) for p in prompts], responses,
                        {"likelihood": np.log(np.random.default_rng(0).uniform(0.1, 1, n))})
    fitted = dataset.fit(("neighbors", "form", "likelihood_rel"), rows)
    assert set(fitted.fits) == {"neighbors", "form", "likelihood_rel"}
    models = fitted.models
    assert models["neighbors"].prompt_unit.dtype == np.float32
    assert models["neighbors"].prompt_unit is models["form"].prompt_unit is models["likelihood_rel"].prompt_unit
    assert len(fits) == 5 and all(m <= 500 for m in _Recorder.sizes[-5:])
    for values in fitted.values.values():
        assert np.all((values >= 0) & (values <= 1))


class _Recorder:
    """The real classifier, recording how many rows each fit gets."""

    sizes: list[int] = []

    def __init__(self, C, seed):
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(C=C, max_iter=200, random_state=seed)

    def fit(self, x, y):
        assert x.dtype == np.float64 and len(x) == len(y)
        _Recorder.sizes.append(len(x))
        self.model.fit(x, y)
        self.classes_ = self.model.classes_
        return self

    def predict_proba(self, x):
        return self.model.predict_proba(x)


def test_capped_training_rows_keep_class_shares():
    rng = np.random.default_rng(0)
    y = rng.choice(3, size=5000, p=[0.7, 0.2, 0.1])
    rows = np.flatnonzero(rng.random(5000) < 0.8)
    picked = neighbors._capped(rows, y, 600, np.random.default_rng(1))
    again = neighbors._capped(rows, y, 600, np.random.default_rng(1))
    np.testing.assert_array_equal(picked, again)  # a fixed seed: the same rows
    assert abs(len(picked) - 600) <= 3 and np.isin(picked, rows).all() and (np.diff(picked) > 0).all()
    for c in range(3):
        assert abs(np.mean(y[picked] == c) - np.mean(y[rows] == c)) < 0.01
    np.testing.assert_array_equal(neighbors._capped(rows, y, len(rows), np.random.default_rng(1)), rows)
