"""Weight fitting for `confidence` (the weighted mean of the signals; in [0, 1], higher = more trustworthy).

Two sources of labels:
* reviewers' decisions: rows kept are good, rows dropped, edited or given an accepted proposal are bad;
* none at all: synthetic bad pairs made from the dataset itself (a response swapped in from another row with a
  different answer, which on a categorical dataset is exactly a label flip; a response cut short; a response that
  only repeats a piece of its prompt; text defects and wrong facts: clear_core.defects), scored with the same
  signals as the originals they were made from; each kind of corruption weighs the same in the fit.

Either way a logistic regression on the component signals separates good from bad; its coefficients, negatives
removed by refitting without them, normalised to sum 1, are the weights. Weights are plain dicts stored with a run.
This module needs no torch: row signals of the synthetic pairs come from a `score_rows(rows)` callable.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .chat import last_user_text
from .defects import FACT_KIND, changed_fact, text_defect
from .defects import names as names_in
from .defects import KINDS as DEFECT_KINDS
from .errors import ClearError

BAD_ACTIONS = ("drop", "edit", "accept")  # a reviewer's decision that the original response was not good
MODEL_KINDS = ("swap", "truncate", "echo")  # the corruptions every row can get (text defects: DEFECT_KINDS)


class CalibrationError(ClearError):
    """Weights cannot be fitted from what is available (too few labelled rows of a kind, no usable signal)."""


@dataclass(frozen=True)
class Calibration:
    """Fitted weights and how well each signal separated good from bad rows on the fitting set.

    auroc: per signal, AUROC for detecting the bad rows (low value = bad; 0.5 = random, 1 = perfect);
    auroc_confidence: the same for `confidence` with the fitted weights.
    """

    weights: dict[str, float]
    method: str  # "decisions" | "synthetic"
    n_good: int
    n_bad: int
    auroc: dict[str, float]
    auroc_confidence: float
    kinds: dict[str, int] = dataclasses.field(default_factory=dict)  # synthetic pairs per corruption kind

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SyntheticSize:
    """How many dataset rows label-free calibration makes its synthetic rows from (each gives one to three and a
    half synthetic rows, each scored like a dataset row): `fraction` of the rows, at least `floor` (or every row of
    a smaller dataset), at most `cap`. The cap is the count the weights were measured with on datasets of 400 rows
    and more (bench/results/quality.md), so those get it unchanged; a small dataset no longer scores more
    synthetic rows than it has rows, while the floor keeps enough good and bad rows for the fit."""

    floor: int = 50
    fraction: float = 0.5
    cap: int = 200

    def sampled(self, n_rows: int) -> int:
        return int(min(n_rows, self.cap, max(self.floor, int(self.fraction * n_rows))))


SYNTHETIC_SIZE = SyntheticSize()


def _auroc(values: np.ndarray, bad: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    ok = ~np.isnan(values)
    if ok.sum() < 2 or bad[ok].all() or not bad[ok].any():
        return float("nan")
    return float(roc_auc_score(bad[ok], -values[ok]))


def fit_weights(values: Mapping[str, np.ndarray], good: np.ndarray, min_each: int = 5, C: float = 1.0,
                mean: str = "geometric", veto: bool = True, sample_weight: np.ndarray | None = None) -> Calibration:
    """Non-negative weights (sum 1) from a logistic regression of good (True) vs bad (False) on the signals, in
    the space `confidence` averages them in (`mean`: their logs for the geometric mean, so that the regression's
    score and `confidence` order rows alike).

    values: signal -> per-row values in [0, 1] (NaN = missing, imputed with the signal's mean). Raises
    CalibrationError when there are fewer than `min_each` good or bad rows, or no signal has any spread.
    veto: whether `confidence` lets the detectors cap it (auroc_confidence is measured as the run combines).
    sample_weight: per labelled row, its weight in the regression (None: all 1).
    """
    from sklearn.linear_model import LogisticRegression

    from .signals.combine import confidence, features

    good = np.asarray(good, dtype=bool)
    n_good, n_bad = int(good.sum()), int((~good).sum())
    if n_good < min_each or n_bad < min_each:
        raise CalibrationError(f"calibration needs at least {min_each} good and {min_each} bad rows; "
                               f"got {n_good} good and {n_bad} bad")
    cols = {}
    for name, v in values.items():
        v = np.asarray(v, dtype=float)
        if len(v) != len(good):
            raise ValueError(f"signal '{name}' has {len(v)} values for {len(good)} labels")
        if np.isnan(v).all():
            continue
        v = features(v, mean)
        v = np.where(np.isnan(v), np.nanmean(v), v)
        if np.ptp(v) > 0:
            cols[name] = v
    if not cols:
        raise CalibrationError(f"no signal varies over the labelled rows (signals: {sorted(values)})")
    names = list(cols)
    coef = {}
    while names:
        x = np.column_stack([cols[n] for n in names])
        lr = LogisticRegression(C=C, max_iter=1000).fit(x, good, sample_weight=sample_weight)
        c = lr.coef_[0]
        if (c > 0).all():
            coef = dict(zip(names, c))
            break
        names = [n for n, ci in zip(names, c) if ci > 0]  # refit without the signals that pull the wrong way
    if not coef:  # nothing helps: fall back to the single best signal
        best = max(cols, key=lambda n: _auroc(cols[n], ~good))
        coef = {best: 1.0}
    total = sum(coef.values())
    weights = {n: float(coef.get(n, 0.0) / total) for n in values}
    bad = ~good
    per_signal = {n: _auroc(np.asarray(v, dtype=float), bad) for n, v in values.items()}
    conf = confidence({n: np.asarray(v, dtype=float) for n, v in values.items()}, weights, mean, veto)
    return Calibration(weights, "", n_good, n_bad, per_signal, _auroc(conf, bad))


def from_decisions(values: Mapping[str, np.ndarray], actions: Sequence[str], min_each: int = 5,
                   mean: str = "geometric", veto: bool = True) -> Calibration:
    """Weights from reviewers' decisions on some rows; `values` holds those rows' signals, aligned with `actions`.

    "keep" marks a good row; "drop", "edit" and "accept" (a proposal replaced the response) mark a bad one; other
    actions are ignored.
    """
    actions = np.asarray(list(actions), dtype=object)
    used = np.isin(actions, ("keep",) + BAD_ACTIONS)
    good = actions[used] == "keep"
    if int(good.sum()) < min_each or int((~good).sum()) < min_each:
        raise CalibrationError(
            f"calibration from decisions needs at least {min_each} kept and {min_each} dropped/edited rows; "
            f"got {int(good.sum())} kept and {int((~good).sum())} dropped/edited")
    cal = fit_weights({n: np.asarray(v, dtype=float)[used] for n, v in values.items()}, good, min_each, mean=mean,
                      veto=veto)
    return dataclasses.replace(cal, method="decisions")


def _field(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split()).strip(" .")


def make_corruptions(rows: Sequence[Any], n: int = 200, seed: int = 0, min_words_truncate: int = 6,
                     labels_only: Sequence[bool] | None = None) -> list[dict]:
    """Synthetic bad pairs: {"prompt", "response", "source_row", "kind"} dicts made from `n` sampled rows.

    Each sampled row gets its response swapped for another row's response with a different normalised text
    ("swap"); sampled rows whose response has at least `min_words_truncate` words also yield the response cut to
    its first 20-50 % of words ("truncate"); and every sampled row yields a run of words of its own prompt (its
    last user turn), as many words as its response has, as the response ("echo"; none when that run is the
    response itself). Rows marked in `labels_only` (their response is a class label: neighbors' categorical rows)
    get the swap only: between labels a swap is exactly a label flip, the noise such data has, while an echo or a
    cut label is a kind of noise it does not have, and fitting weights to catch it would pull them away from
    the signals that catch flips (bench/results/quality.md, History). Every other sampled free-text row also
    yields one text defect (clear_core.defects: an appended instruction, a placeholder, an unseen input, stray
    artifacts, a changed arithmetic result), so that the text signals are weighted by what they separate; each
    of the remaining sampled free-text rows yields a wrong fact (a number shifted or a name swapped for one of other
    responses: defects.changed_fact; kind "fact") where its response has one, an error no text rule sees.
    """
    rng = np.random.default_rng(seed)
    responses = [str(_field(r, "response")) for r in rows]
    norm = np.array([_norm(t) for t in responses], dtype=object)
    if len(set(norm)) < 2:
        raise CalibrationError("every response is the same text: no synthetic swaps can be made")
    out = []
    only_swap = np.zeros(len(rows), bool) if labels_only is None else np.asarray(labels_only, dtype=bool)
    sampled = rng.permutation(len(rows))[:n]
    for i in sampled:
        prompt = _field(rows[i], "prompt")
        for _ in range(50):
            j = int(rng.integers(len(rows)))
            if norm[j] != norm[i]:
                out.append({"prompt": prompt, "response": responses[j], "source_row": int(i), "kind": "swap"})
                break
        if only_swap[i]:
            continue
        words = responses[i].split()
        if len(words) >= min_words_truncate:
            keep = max(1, int(len(words) * rng.uniform(0.2, 0.5)))
            out.append({"prompt": prompt, "response": " ".join(words[:keep]), "source_row": int(i), "kind": "truncate"})
        echo = _echo(prompt, max(1, len(words)), rng)
        if echo and _norm(echo) != norm[i]:
            out.append({"prompt": prompt, "response": echo, "source_row": int(i), "kind": "echo"})
    return out + _text_defects(rows, responses, sampled, only_swap, seed) + _facts(rows, responses, sampled,
                                                                                   only_swap, seed)


def _text_defects(rows, responses, sampled: np.ndarray, only_swap: np.ndarray, seed: int) -> list[dict]:
    """One text defect (clear_core.defects) for every other sampled free-text row, drawn from a generator of its
    own so that the swaps, truncations and echoes stay the same rows as without them."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for i in [i for i in sampled if not only_swap[i]][::2]:
        j = int(rng.integers(len(rows)))
        made = text_defect(_field(rows[i], "prompt"), responses[i], (_field(rows[j], "prompt"), responses[j]), i, rng)
        if made is not None and (made[2] == "unseen" or _norm(made[1]) != _norm(responses[i])):
            out.append({"prompt": made[0], "response": made[1], "source_row": int(i), "kind": made[2]})
    return out


def _facts(rows, responses, sampled: np.ndarray, only_swap: np.ndarray, seed: int) -> list[dict]:
    """A wrong fact for each sampled free-text row left without a text defect (its own generator again, and last,
    so that every other synthetic row is the same as without them); the names come from the sampled responses."""
    rng = np.random.default_rng([seed, 2])
    free = [i for i in sampled if not only_swap[i]]
    pool = names_in(responses[i] for i in free)
    out = []
    for i in free[1::2]:
        made = changed_fact(responses[i], pool, rng)
        if made is not None:
            out.append({"prompt": _field(rows[i], "prompt"), "response": made, "source_row": int(i), "kind": FACT_KIND})
    return out


def _echo(prompt: Any, n_words: int, rng: np.random.Generator) -> str:
    """A random run of `n_words` words (fewer if the text is shorter) of the prompt's last user turn."""
    words = last_user_text(prompt).split()
    if not words:
        return ""
    n = min(n_words, len(words))
    start = int(rng.integers(len(words) - n + 1))
    return " ".join(words[start:start + n])


def kind_balance(kinds: Sequence[str]) -> np.ndarray:
    """Regression weights of the synthetic rows: every corruption kind weighs the same in all, its rows sharing it,
    and the bad rows weigh as many as they are. Otherwise a swap, truncation and echo for nearly every sampled row
    outvote the text defects and wrong facts (a fraction of the rows each), and the signals that alone catch those
    get next to no weight. With a single kind (categorical rows: swaps only) every weight is 1."""
    counts = Counter(kinds)
    return np.array([len(kinds) / (len(counts) * counts[k]) for k in kinds], dtype=float)


def label_free(rows: Sequence[Any], values: Mapping[str, np.ndarray],
               score_rows: Callable[[list[dict]], Mapping[str, np.ndarray]],
               n: int = 200, seed: int = 0, min_each: int = 5,
               labels_only: Sequence[bool] | None = None, mean: str = "geometric", veto: bool = True) -> Calibration:
    """Weights that separate synthetic corruptions of the dataset from the rows they were made from.

    rows: the dataset rows (mappings or objects with `prompt` and `response`); values: their signal values
    (signal -> array over all rows), as scored by the run; score_rows: scores a list of synthetic rows (dicts with
    prompt, response, source_row, kind) with the same signals, the dataset signal scored out-of-fold against the
    source row (neighbors.score_queries). Signals score_rows does not return count as missing for the synthetic rows.
    labels_only: rows whose response is a class label (see make_corruptions). Each corruption kind weighs the same
    in the fit (kind_balance).
    """
    bad_rows = make_corruptions(rows, n=n, seed=seed, labels_only=labels_only)
    if not bad_rows:
        raise CalibrationError("no synthetic corruptions could be made from this dataset")
    src = np.array([r["source_row"] for r in bad_rows])
    originals = np.unique(src)
    bad_values = score_rows(bad_rows)
    merged = {}
    for name, v in values.items():
        orig = np.asarray(v, dtype=float)[originals]
        syn = np.asarray(bad_values.get(name, np.full(len(bad_rows), np.nan)), dtype=float)
        if len(syn) != len(bad_rows):
            raise ValueError(f"score_rows returned {len(syn)} values of '{name}' for {len(bad_rows)} rows")
        merged[name] = np.concatenate([orig, syn])
    good = np.r_[np.ones(len(originals), bool), np.zeros(len(bad_rows), bool)]
    counts = Counter(r["kind"] for r in bad_rows)
    cal = fit_weights(merged, good, min_each, mean=mean, veto=veto,
                      sample_weight=np.r_[np.ones(len(originals)), kind_balance([r["kind"] for r in bad_rows])])
    kinds = {k: counts[k] for k in MODEL_KINDS + DEFECT_KINDS + (FACT_KIND,) if k in MODEL_KINDS or counts[k]}
    return dataclasses.replace(cal, method="synthetic", kinds=kinds)
