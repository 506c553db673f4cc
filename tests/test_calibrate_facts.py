"""Label-free calibration's wrong facts (defects.changed_fact) and its per-kind balance (calibrate.kind_balance)."""

import re

import numpy as np

from clear_core import calibrate, defects

CITIES = ("Paris", "Athens", "Lima", "Oslo", "Cairo")


def _rows(n=60):
    return [{"prompt": [{"role": "user", "content": f"Where did traveller {i} go, and how far?"}],
             "response": f"The trip went from home to {CITIES[i % 5]} and covered {100 + 7 * i} km in all."}
            for i in range(n)]


def _diff(a: str, b: str) -> list[tuple[str, str]]:
    return [(x, y) for x, y in zip(a.split(), b.split()) if x != y]


def test_a_wrong_fact_changes_one_number_or_one_name_for_another_of_the_dataset():
    rows = _rows()
    bad = calibrate.make_corruptions(rows, n=40, seed=0)
    facts = [b for b in bad if b["kind"] == calibrate.FACT_KIND]
    assert 15 <= len(facts) <= 20  # every other sampled free-text row (those without a text defect)
    pool = set(CITIES)
    changed_names = changed_numbers = 0
    for b in facts:
        original = rows[b["source_row"]]
        assert b["prompt"] == original["prompt"]
        (old, new), = _diff(original["response"], b["response"])  # exactly one word changed
        if old in pool:
            assert new in pool and new != old
            changed_names += 1
        else:
            assert re.fullmatch(r"\d+", new) and int(new) >= 0 and new != old
            changed_numbers += 1
    assert changed_names and changed_numbers
    # seeded, and the other synthetic rows are those made without wrong facts
    assert bad == calibrate.make_corruptions(rows, n=40, seed=0)
    assert [b for b in bad if b["kind"] != calibrate.FACT_KIND] == bad[:len(bad) - len(facts)]
    # label rows (categorical) get swaps only; a response with no number and no name gets no wrong fact
    assert not [b for b in calibrate.make_corruptions(rows, n=40, seed=0, labels_only=[True] * len(rows))
                if b["kind"] == calibrate.FACT_KIND]
    assert defects.changed_fact("the answer is yes.", list(CITIES), np.random.default_rng(0)) is None
    # a sentence's first word is not a name; a thousands-separated number is left alone rather than half-changed
    assert defects.names(["Yes, it is in Paris. Then we left."]) == ["Paris"]
    assert defects.changed_fact("It cost 1,250 dollars.", [], np.random.default_rng(0)) is None


def test_kind_balance_gives_every_corruption_kind_the_same_say():
    kinds = ["swap"] * 90 + ["placeholder"] * 10
    w = calibrate.kind_balance(kinds)
    assert abs(w.sum() - 100.0) < 1e-9
    assert abs(w[:90].sum() - w[90:].sum()) < 1e-9
    np.testing.assert_allclose(calibrate.kind_balance(["swap"] * 7), np.ones(7))  # one kind: as without balance


def test_a_signal_that_alone_catches_a_rare_kind_gets_weight_in_label_free_calibration():
    """Without the balance the rare placeholders (3 % of the synthetic rows) move the fit less, and the signal
    that alone catches them gets less weight."""
    rng = np.random.default_rng(0)
    rows = [{"prompt": f"Question {i}?", "response": f"answer {i} " * 8} for i in range(120)]
    values = {"soft": rng.uniform(0.5, 1.0, 120), "placeholder": np.ones(120)}

    def score_rows(bad_rows):
        n = len(bad_rows)
        placeholder = np.array([b["kind"] == "placeholder" for b in bad_rows])
        soft = np.where(placeholder, rng.uniform(0.5, 1.0, n), rng.uniform(0.2, 0.7, n))
        return {"soft": soft, "placeholder": np.where(placeholder, 0.02, 1.0)}

    cal = calibrate.label_free(rows, values, score_rows, n=120, seed=0)
    assert 0 < cal.kinds["placeholder"] < 0.05 * sum(cal.kinds.values())
    assert cal.weights["placeholder"] > 0.15  # the others' soft signal separates every other kind
    # the same rows fitted without the balance: the rare kind's detector gets far less
    bad = calibrate.make_corruptions(rows, n=120, seed=0)
    src = np.array([b["source_row"] for b in bad])
    originals = np.unique(src)
    syn = score_rows(bad)
    merged = {k: np.r_[values[k][originals], syn[k]] for k in values}
    good = np.r_[np.ones(len(originals), bool), np.zeros(len(bad), bool)]
    plain = calibrate.fit_weights(merged, good)
    assert cal.weights["placeholder"] > 1.2 * plain.weights["placeholder"]
