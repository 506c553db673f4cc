"""Signal registry: every confidence signal by name, each in [0, 1], higher = more trustworthy.

Row signals (likelihood, reflection, consistency, ifd) are computed batch by batch by `clear_core.scoring`; the
context signals (likelihood_ctx, likelihood_ctx_min) in a second pass once every row is embedded (they need each
row's nearest rows); the dataset signals (neighbors, form, likelihood_rel) over all rows at once. A descriptor names
its module, which is imported only when the signal is used, so the registry costs nothing to import and lists
signals whose module is heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ..errors import UnknownNameError


@dataclass(frozen=True)
class Signal:
    name: str
    kind: str            # "row" (per row, from the fused forward), "context" (a second pass per row, after every
    #                      row is embedded) or "dataset" (over all rows at once)
    module: str          # clear_core.signals.<module>
    description: str
    needs_sampling: bool = False

    def load(self) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self.module}")

    def compute(self, *args, **kwargs):
        """The module's `compute` (dataset signals return (values, raw) over all rows; see each module)."""
        return self.load().compute(*args, **kwargs)


REGISTRY: dict[str, Signal] = {s.name: s for s in (
    Signal("likelihood", "row", "likelihood",
           "geometric-mean token probability of the response given the prompt (teacher forced)"),
    Signal("likelihood_min", "row", "likelihood",
           "probability of the least likely response token (a single wrong token is not diluted by the mean)"),
    Signal("likelihood_end", "row", "likelihood",
           "probability that the response ends where it does (the end-of-turn token after it)"),
    Signal("reflection", "row", "reflection",
           "the model's own verdict on the answer: expected score of A/B/C over BSDetector's two questions"),
    Signal("consistency", "row", "consistency",
           "agreement of k sampled chain-of-thought answers with the response (BSDetector)", needs_sampling=True),
    Signal("ifd", "row", "ifd", "instruction-following difficulty: how much the prompt helps predict the response"),
    Signal("likelihood_ctx", "context", "context",
           "likelihood of the response with the most similar rows shown first as worked examples (the dataset's "
           "own answer form is expected, so what is left is the content)"),
    Signal("likelihood_ctx_min", "context", "context",
           "probability of the least likely response token, with the same worked examples first"),
    Signal("neighbors", "dataset", "neighbors",
           "agreement with similar prompts' responses (out-of-fold classifier or nearest neighbours)"),
    Signal("likelihood_rel", "dataset", "likelihood",
           "the response's likelihood ranked among the responses to the nearest prompts (no task-format effect)"),
    Signal("form", "dataset", "form",
           "the response's shape (copies the prompt, parses as JSON, empty) is usual among similar prompts' responses"),
)}

ROW_SIGNALS = tuple(n for n, s in REGISTRY.items() if s.kind == "row")
CONTEXT_SIGNALS = tuple(n for n, s in REGISTRY.items() if s.kind == "context")
DATASET_SIGNALS = tuple(n for n, s in REGISTRY.items() if s.kind == "dataset")


def get_signal(name: str) -> Signal:
    """The descriptor of a signal; an unknown name raises UnknownNameError listing the valid ones."""
    if name not in REGISTRY:
        raise UnknownNameError("signal", name, list(REGISTRY))
    return REGISTRY[name]
