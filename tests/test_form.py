"""The `form` signal: a response's shape (copies the prompt, JSON, empty) against its nearest prompts' responses."""

from __future__ import annotations

import numpy as np
import pytest

from clear_core.signals import form, get_signal


def test_shape_features():
    assert form.is_copy("Give the antonym of the word 'happy'.", "Happy")
    assert form.is_copy([{"role": "user", "content": "Fix: He write a letter."}], "he write a letter")
    assert not form.is_copy("Give the antonym of the word 'happy'.", "sad")
    assert not form.is_copy("unhappy people", "happy")  # whole words only
    assert not form.is_copy("anything", "   ")
    assert form.is_json('{"a": 1}') and form.is_json(" [1, 2] ")
    assert not form.is_json('{"a": 1 "b": 2}') and not form.is_json("positive") and not form.is_json("")
    feats = form.features(["say hi", "q"], ["", '{"x": 1}'])
    assert feats.tolist() == [[0, 0, 1], [0, 1, 0]]


def _clusters(n_per: int = 12, dim: int = 16, seed: int = 0):
    """Two prompt clusters: antonym questions (answers never copy) and sentiment questions (labels always copy)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim)) * 5
    emb = np.concatenate([centres[0] + rng.normal(size=(n_per, dim)), centres[1] + rng.normal(size=(n_per, dim))])
    words = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down")]
    prompts, responses = [], []
    for i in range(n_per):
        w, a = words[i % len(words)]
        prompts.append(f"Give the antonym of the word '{w}'.")
        responses.append(a)
    for i in range(n_per):
        prompts.append(f"Is this review positive or negative? Review number {i}.")
        responses.append("positive" if i % 2 else "negative")
    return emb, prompts, responses


def test_a_copy_is_flagged_where_neighbours_do_not_copy_and_not_where_they_do():
    emb, prompts, responses = _clusters()
    responses[3] = "up"  # row 3's prompt is about 'up': an echo among answers that never copy
    values, raw = form.compute(emb, prompts, responses, k=8)
    assert values[3] < 0.15 and raw[3] == 1  # copy bit
    others = np.delete(np.arange(len(values)), 3)
    assert values[others].min() > 0.8  # the sentiment labels copy their prompt like all their neighbours
    assert values.min() >= 0 and values.max() <= 1


def test_broken_json_among_json_answers_is_flagged():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(20, 8)) + 4
    prompts = [f"Extract the name from: Hi, I am person {i}." for i in range(20)]
    responses = [f'{{"name": "person {i}"}}' for i in range(20)]
    responses[7] = '{"name": "person 7"'
    values, raw = form.compute(emb, prompts, responses, k=8)
    assert values[7] < 0.15 and raw[7] == 0 and (raw[np.arange(20) != 7] == 2).all()
    assert values[np.arange(20) != 7].min() > 0.7 and np.median(values) > 0.9  # a neighbour of row 7 sees 1 in 8


def test_queries_score_against_the_dataset_without_their_source_row():
    emb, prompts, responses = _clusters()
    model, values, _ = form.fit(emb, prompts, responses, k=8)
    echo = form.score_queries(model, emb[[0, 13]], [prompts[0], prompts[13]], ["hot", "positive"], [0, 13])
    assert echo[0] < 0.15 and echo[1] > 0.8
    # a query equal to its source row scores like the row itself (the source row is not its own neighbour)
    same = form.score_queries(model, emb[[5]], [prompts[5]], [responses[5]], [5])
    assert same[0] == pytest.approx(values[5])


def test_registry_and_length_checks():
    assert get_signal("form").kind == "dataset"
    with pytest.raises(ValueError, match="same length"):
        form.compute(np.zeros((3, 4)), ["a", "b"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="at least 2"):
        form.compute(np.zeros((1, 4)), ["a"], ["x"])


def test_dataset_signals_fit_and_query_together():
    """signals.dataset fits the wanted dataset signals at once; a query that is its own source row scores like it
    (form, likelihood_rel), and likelihood_rel is left out without raw likelihoods."""
    from clear_core.signals import dataset

    emb, prompts, responses = _clusters()
    raw = np.linspace(-3, -1, len(responses))
    rows = dataset.Rows(emb, emb, prompts, responses, {"likelihood": raw})
    fitted = dataset.fit(("neighbors", "form", "likelihood_rel"), rows)
    assert list(fitted.values) == ["neighbors", "form", "likelihood_rel"]
    assert fitted.labels_only is not None and len(fitted.labels_only) == len(responses)
    q = dataset.score_queries(fitted, dataset.Rows(emb[[2, 14]], emb[[2, 14]], [prompts[2], prompts[14]],
                                                   [responses[2], responses[14]], {"likelihood": raw[[2, 14]]}),
                              [2, 14])
    assert set(q) == {"neighbors", "form", "likelihood_rel"}
    np.testing.assert_allclose(q["form"], fitted.values["form"][[2, 14]])
    np.testing.assert_allclose(q["likelihood_rel"], fitted.values["likelihood_rel"][[2, 14]])
    no_raw = dataset.Rows(emb, emb, prompts, responses)
    assert "likelihood_rel" not in dataset.fit(("form", "likelihood_rel"), no_raw).values
    assert "likelihood_rel" not in dataset.score_queries(fitted, dataset.Rows(emb[:1], emb[:1], prompts[:1],
                                                                              responses[:1]), [0])
    assert dataset.fit(("form",), no_raw).labels_only is None


def test_equal_typicality_compares_equal_whatever_the_neighbours_order():
    """A dataset where every response copies its prompt (labels named in the question): every row is equally
    typical, so the values are one number (not float noise that would rank the rows), for the rows and for queries
    scored in another order."""
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(200, 16))
    labels = ("positive", "negative", "neutral")
    prompts = [[{"role": "user", "content": f"Sentence {i}: positive, negative or neutral?"}] for i in range(200)]
    responses = [labels[i % 3] for i in range(200)]
    model, values, raw = form.fit(emb, prompts, responses)
    assert (raw == 1).all() and len(np.unique(values)) == 1
    order = rng.permutation(200)
    q = form.score_queries(model, emb[order], [prompts[i] for i in order], [responses[i] for i in order], order)
    assert len(np.unique(np.r_[q, values])) == 1
