import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from clear_core.signals import neighbors
from clear_core.signals.neighbors import NeighborsConfig


def _clustered(n=600, k=3, d=32, flip=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    y = rng.integers(k, size=n)
    emb = centers[y] + rng.normal(size=(n, d))
    noisy = y.copy()
    flipped = rng.random(n) < flip
    noisy[flipped] = (y[flipped] + rng.integers(1, k, size=flipped.sum())) % k
    names = np.array(["negative", "neutral", "positive"])
    responses = [f"{'ABC'[c]}. {names[c]}" for c in noisy]
    resp_emb = rng.normal(size=(n, d))
    return emb, resp_emb, responses, flipped, y


@pytest.mark.parametrize("cfg", [NeighborsConfig(), NeighborsConfig(prune=True), NeighborsConfig(knn_weight=0.5)])
def test_flipped_labels_detected_out_of_fold(cfg):
    emb, remb, responses, flipped, y = _clustered()
    res = neighbors.compute(emb, remb, responses, cfg)
    assert res.categorical.all()
    assert np.all((res.values >= 0) & (res.values <= 1))
    assert roc_auc_score(flipped, -res.values) > 0.9
    # the predicted answer is mostly the true class, also on flipped rows
    truth = np.array([f"{'ABC'[c]}. {['negative', 'neutral', 'positive'][c]}" for c in y])
    assert np.mean(res.predicted[flipped] == truth[flipped]) > 0.8
    assert np.all((res.predicted_prob > 0) & (res.predicted_prob <= 1))


def test_categorical_detection_on_and_off():
    labels, classes = neighbors.detect_classes(["Yes.", "yes", " YES", "No"] * 20)
    assert classes == ("no", "yes") and (labels >= 0).all()
    free = [f"answer number {i} with some words" for i in range(80)]
    labels, classes = neighbors.detect_classes(free)
    assert classes == () and (labels == -1).all()
    # a few repeated short answers in a large free-text set are not a classification task
    mixed = free * 5 + ["ok"] * 3 + ["sure"] * 3
    assert neighbors.detect_classes(mixed)[1] == ()
    # long repeated responses are not labels
    assert neighbors.detect_classes(["this is a long repeated paragraph " * 5] * 40 + ["x"] * 40)[1] == ()


def _free_text_data(n=400, topics=20, d=24, seed=1):
    rng = np.random.default_rng(seed)
    tp = rng.normal(size=(topics, d)) * 3
    tr = rng.normal(size=(topics, d)) * 3
    t = rng.integers(topics, size=n)
    pe = tp[t] + rng.normal(size=(n, d))
    re_ = tr[t] + rng.normal(size=(n, d))
    responses = [f"free text response {i} about topic {t[i]} " + "word " * (i % 7) for i in range(n)]
    return pe, re_, responses, t


def test_free_text_swapped_responses_score_lower():
    pe, re_, responses, t = _free_text_data()
    rng = np.random.default_rng(5)
    swapped = rng.random(len(t)) < 0.2
    perm = rng.permutation(len(t))
    re2 = re_.copy()
    re2[swapped] = re_[perm[swapped]]
    actually = swapped & (t[perm] != t)
    res = neighbors.compute(pe, re2, responses)
    assert not res.categorical.any()
    assert np.all((res.values >= 0) & (res.values <= 1))
    assert res.values[actually].mean() < res.values[~swapped].mean() - 0.3
    assert roc_auc_score(actually[~swapped | actually], -res.values[~swapped | actually]) > 0.9
    assert all(p is None for p in res.predicted)


def test_score_queries_out_of_fold_for_categorical_and_free_text():
    emb, remb, responses, flipped, y = _clustered(n=400, flip=0.0)
    model, res = neighbors.fit(emb, remb, responses)
    rows = np.arange(50)
    other = [f"{'ABC'[(y[i] + 1) % 3]}. {['negative', 'neutral', 'positive'][(y[i] + 1) % 3]}" for i in rows]
    orig_q = neighbors.score_queries(model, emb[rows], remb[rows], [responses[i] for i in rows], rows)
    flip_q = neighbors.score_queries(model, emb[rows], remb[rows], other, rows)
    # the original pairs re-scored as queries reproduce the out-of-fold values exactly
    np.testing.assert_allclose(orig_q, res.values[rows], atol=1e-9)
    assert flip_q.mean() < 0.3 < orig_q.mean()
    pe, re_, fresp, t = _free_text_data()
    model, res = neighbors.fit(pe, re_, fresp)
    q = neighbors.score_queries(model, pe[:30], re_[:30], fresp[:30], np.arange(30))
    np.testing.assert_allclose(q, res.values[:30], atol=1e-9)
    far = np.array([np.flatnonzero(t != t[i])[0] for i in range(30)])
    swapped = neighbors.score_queries(model, pe[:30], re_[far], [fresp[j] for j in far], np.arange(30))
    assert swapped.mean() < q.mean() - 0.3


def test_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        neighbors.compute(np.zeros((3, 4)), np.zeros((2, 4)), ["a", "b", "c"])


def test_mixed_dataset_label_on_a_free_text_prompt_scores_low():
    emb, remb, responses, flipped, y = _clustered(n=160, flip=0.0, seed=3)
    pe, re_, fresp, t = _free_text_data(n=300, d=32, seed=4)
    prompts = np.vstack([emb, pe + 6.0])  # the free-text prompts sit apart from the labelled ones
    resp_emb = np.vstack([remb, re_])
    responses = list(responses) + list(fresp)
    model, res = neighbors.fit(prompts, resp_emb, responses, NeighborsConfig(C=0.05))
    assert res.categorical[:160].all() and not res.categorical[160:].any()
    assert res.values[:160].mean() > 0.7
    # a class label pasted onto free-text prompts: the classifier's "other" class takes the probability
    pasted = neighbors.score_queries(model, prompts[160:200], resp_emb[:40], responses[:40], np.arange(160, 200))
    assert pasted.mean() < 0.2
