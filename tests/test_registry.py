"""The signal registry dispatches: a signal of each kind added as one module and one registry line is computed and
stored by a scoring run; every registered signal's `compute` runs with its kind's arguments; ScoreConfig checks
signal names and takes its defaults from the `fast` preset."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from clear_core import pipeline, scoring
from clear_core.config import PRESETS, ScoreConfig, preset_config
from clear_core.errors import ClearError, UnknownNameError
from clear_core.scoring import Row
from clear_core.signals import KINDS, REGISTRY, Signal, dataset, get_signal, of_kind


def _length_value(responses) -> np.ndarray:
    return np.array([1.0 / (1.0 + len(str(r))) for r in responses])


def _toy_module() -> types.ModuleType:
    """One module holding a toy signal of each kind, each in [0, 1]."""
    toy = types.ModuleType("clear_core.signals.toy")
    toy.calls = []  # (kind, rows or seed) of each call

    def row(batch):  # the likelihood recomputed from the fused forward's token log-probs
        toy.calls.append(("row", len(batch.rows)))
        lps = batch.token_logprobs(include_end=False)
        raw = np.array([float(np.mean(lp)) if len(lp) else np.nan for lp in lps])
        return np.exp(raw), raw

    def sampled(backend, rows, config, seed):
        toy.calls.append(("sampled", seed))
        return _length_value([r.response for r in rows]), np.array([len(r.response) for r in rows], float)

    def in_context(token_logprobs, ends_turn):  # likelihood_ctx recomputed
        toy.calls.append(("context", len(token_logprobs)))
        raw = np.array([float(np.mean(lp)) if len(lp) else np.nan for lp in token_logprobs])
        return np.exp(raw), raw

    def over_dataset(data):  # the share of the dataset's rows that give the same response
        counts = {}
        for r in data.responses:
            counts[r] = counts.get(r, 0) + 1

        def share(rows):
            toy.calls.append(("dataset", len(rows)))
            return np.array([counts.get(r, 0) / len(data) for r in rows.responses])

        values = share(data)
        return dataset.Fitted(values, values * len(data), counts, lambda q, src: share(q))

    toy.row, toy.sampled, toy.in_context, toy.over_dataset = row, sampled, in_context, over_dataset
    return toy


@pytest.fixture
def toy_signals(monkeypatch):
    toy = _toy_module()
    monkeypatch.setitem(sys.modules, toy.__name__, toy)
    for name, kind, entry in (("toy_row", "row", "toy:row"), ("toy_sampled", "sampled", "toy:sampled"),
                              ("toy_context", "context", "toy:in_context"),
                              ("toy_dataset", "dataset", "toy:over_dataset")):
        monkeypatch.setitem(REGISTRY, name, Signal(name, kind, entry, f"a toy {kind} signal"))
    return toy


def test_a_toy_signal_of_each_kind_is_computed_and_stored_by_a_run(small_workspace, tiny_backend, toy_signals):
    names = ("likelihood", "likelihood_ctx", "toy_row", "toy_sampled", "toy_context", "toy_dataset")
    config = preset_config("fast", batch_size=16, signals=names, weights={n: 1.0 for n in names}, k_samples=1)
    run_id = pipeline.run_scoring(small_workspace, "small", config, backend=tiny_backend)
    run = small_workspace.get_run(run_id)
    assert run.status == "done" and run.n_failed == 0
    wide = small_workspace.scores_wide(run_id)
    responses = small_workspace.examples(run.dataset_id)["response"].tolist()
    assert len(wide) == len(responses) == 48
    np.testing.assert_allclose(wide["toy_row"], wide["likelihood"], rtol=1e-9)
    np.testing.assert_allclose(wide["toy_context"], wide["likelihood_ctx"], rtol=1e-9)
    np.testing.assert_allclose(wide["toy_sampled"], _length_value(responses))
    share = np.array([responses.count(r) / 48 for r in responses])
    np.testing.assert_allclose(wide["toy_dataset"], share)
    raw = small_workspace.scores_wide(run_id, ["toy_dataset", "toy_sampled"], raw=True)
    np.testing.assert_allclose(raw["toy_dataset"], share * 48)
    assert wide["confidence"].between(0, 1).all() and set(names) <= set(run.weights)
    calls = toy_signals.calls
    # the sampled signal ran once per chunk of 16 rows, seeded by the chunk's first row
    assert {0, 16, 32} <= {n for kind, n in calls if kind == "sampled"}
    # calibration scored its synthetic rows (negative ids) with every toy signal too
    synthetic = sum(n for kind, n in calls if kind == "row") - 48
    assert synthetic > 0 and any(n < 0 for kind, n in calls if kind == "sampled")
    assert sum(n for kind, n in calls if kind == "context") == 48 + synthetic
    assert sum(n for kind, n in calls if kind == "dataset") == 48 + synthetic


def _rows() -> list[Row]:
    qa = [("What is the capital of France?", "Paris"), ("What is 2 + 3?", "The answer is 5."),
          ("Name a colour.", "Blue"), ("What is 7 - 4?", "3")]
    return [Row(i, [{"role": "user", "content": q}], a) for i, (q, a) in enumerate(qa)]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_signal_computes_with_its_kinds_arguments(name, tiny_backend):
    signal = get_signal(name)
    assert signal.kind in KINDS and callable(getattr(signal.load(), signal.entry.split(":")[1]))
    rows = _rows()
    config = preset_config("fast", signals=(name,), weights={}, k_samples=1, agreement="f1", max_new_tokens=4)
    if signal.kind == "row":
        values, raw = signal.compute(scoring.forward_batch(tiny_backend, rows, config))
        np.testing.assert_allclose(values, scoring.score_batch(tiny_backend, rows, config).values[name], atol=1e-9)
    elif signal.kind == "sampled":
        values, raw = signal.compute(tiny_backend, rows, config, 0)
    elif signal.kind == "context":
        values, raw = signal.compute([np.log([0.5, 0.25]), np.log([0.9]), np.log([0.3, 0.6, 0.4]), np.log([1.0])],
                                     [True, False, True, True])
    else:
        rng = np.random.default_rng(0)
        n = 40
        emb = rng.normal(size=(n, 8))
        prompts = [[{"role": "user", "content": f"question {i % 5}"}] for i in range(n)]
        responses = [("yes", "no")[i % 2] for i in range(n)]
        data = dataset.Rows(emb, emb, prompts, responses, {"likelihood": rng.uniform(-3, 0, n)})
        fitted = signal.compute(data)
        values, raw = fitted.values, fitted.raw
        queried = fitted.score(dataset.Rows(emb[:3], emb[:3], prompts[:3], responses[:3],
                                            {"likelihood": data.raw["likelihood"][:3]}), np.arange(3))
        assert queried.shape == (3,) and np.all((queried >= 0) & (queried <= 1))
    expected = 40 if signal.kind == "dataset" else 4
    assert values.shape == raw.shape == (expected,)
    assert np.all((values >= 0) & (values <= 1)), values


def test_of_kind_reads_the_registry_live(toy_signals):
    assert of_kind("row")[-1] == "toy_row" and "toy_dataset" in of_kind("dataset")
    assert of_kind("dataset", ["form", "toy_dataset", "likelihood"]) == ("form", "toy_dataset")
    with pytest.raises(UnknownNameError, match="valid: row, sampled, context, dataset"):
        of_kind("rows")


def test_score_config_checks_signal_names():
    with pytest.raises(UnknownNameError) as err:
        ScoreConfig(signals=("likelihod", "neighbors"))
    assert isinstance(err.value, ClearError)
    assert "unknown signal 'likelihod'" in str(err.value) and "likelihood, likelihood_min" in str(err.value)
    with pytest.raises(UnknownNameError, match="'neighbours'"):
        preset_config("fast", weights={"neighbours": 1.0})
    assert ScoreConfig.from_dict({"signals": ["likelihood", "form"]}).signals == ("likelihood", "form")


def test_score_config_defaults_are_the_fast_preset():
    default, fast = ScoreConfig(), preset_config("fast")
    assert default == fast
    assert default.signals == PRESETS["fast"]["signals"] and dict(default.weights) == PRESETS["fast"]["weights"]
    default.weights["likelihood"] = 0.0  # each config has its own weights: the preset is not changed
    assert PRESETS["fast"]["weights"]["likelihood"] == 1.0 == ScoreConfig().weights["likelihood"]


def test_text_signal_fits_on_the_rows_and_scores_queries_with_the_same_model():
    def fit_text(prompts, responses):  # the responses seen, as a text rule's model
        return set(responses)

    def score_text(model, prompts, responses):
        seen = np.array([r in model for r in responses], dtype=float)
        return 0.2 + 0.8 * seen, seen

    rows = dataset.Rows(np.zeros((3, 2)), np.zeros((3, 2)), ["a", "b", "c"], ["x", "y", "x"])
    fitted = dataset.text_signal(fit_text, score_text, rows)
    assert fitted.model == {"x", "y"}
    np.testing.assert_allclose(fitted.values, 1.0)
    np.testing.assert_allclose(fitted.raw, 1.0)
    queries = dataset.Rows(np.zeros((2, 2)), np.zeros((2, 2)), ["a", "b"], ["y", "z"])
    np.testing.assert_allclose(fitted.score(queries, np.array([0, 1])), [1.0, 0.2])
