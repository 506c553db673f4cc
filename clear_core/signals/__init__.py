"""Signal registry: every confidence signal by name, each in [0, 1], higher = more trustworthy.

A signal is one registry line naming its kind and its entry (module:function, the module imported only when the
signal is used, so the registry costs nothing to import). The kind fixes when the signal runs and how its entry is
called; `scoring` and `pipeline` loop over the registry by kind:

* "row": `compute(batch: scoring.RowBatch) -> (values, raw)`, one array each over the batch's rows, read from the
  batch's fused teacher-forced forward (its token log-probs, its follow-up questions: a module's QUESTIONS and
  CANDIDATES are asked on the response's KV cache when one of its signals is wanted; `batch.logprobs_after`
  runs more forwards);
* "sampled": `compute(backend, rows: Sequence[scoring.Row], config, seed) -> (values, raw)`, answers sampled per
  row; runs only when config.k_samples > 0, a chunk of config.batch_size rows at a time;
* "context": `compute(token_logprobs, ends_turn) -> (values, raw)` from the in-context pass (each row after its
  nearest rows as worked examples, once every row is embedded; `scoring.score_context`);
* "dataset": `compute(data: dataset.Rows) -> dataset.Fitted | None` over all rows at once, from their embeddings
  and text; the fit also scores extra pairs made from dataset rows (calibration's synthetic rows). None: the
  inputs it needs are missing (likelihood_rel without the likelihood's raw values).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Iterable

from ..errors import UnknownNameError

KINDS = ("row", "sampled", "context", "dataset")


@dataclass(frozen=True)
class Signal:
    name: str
    kind: str         # one of KINDS: when the signal runs and how `compute` is called (module docstring)
    entry: str        # "module:function"; a bare module is one of clear_core.signals
    description: str
    label: str = ""   # a short plain-language name for charts and tables ("Neighbours agree"); the name if empty
    # A high-precision check, 1.0 when silent: when it fires it caps confidence (combine.detector_cap) instead of
    # only being averaged in with the weight calibration gives it.
    detector: bool = False

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def module(self) -> str:
        name = self.entry.partition(":")[0]
        return name if "." in name else f"{__name__}.{name}"

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    def compute(self, *args, **kwargs):
        """The entry function, called with the kind's arguments (module docstring)."""
        return getattr(self.load(), self.entry.partition(":")[2])(*args, **kwargs)


REGISTRY: dict[str, Signal] = {s.name: s for s in (
    Signal("likelihood", "row", "likelihood:row_mean",
           "geometric-mean token probability of the response given the prompt (teacher forced)",
           label="Model finds the answer likely"),
    Signal("likelihood_min", "row", "likelihood:row_min",
           "probability of the least likely response token (a single wrong token is not diluted by the mean)",
           label="No very unlikely word"),
    Signal("likelihood_end", "row", "likelihood:row_end",
           "probability that the response ends where it does (the end-of-turn token after it)",
           label="Ends where expected"),
    Signal("reflection", "row", "reflection:compute",
           "the model's own verdict on the answer: expected score of A/B/C over BSDetector's two questions",
           label="Model judges it correct"),
    Signal("ifd", "row", "ifd:compute",
           "instruction-following difficulty: how much the prompt helps predict the response",
           label="Prompt helps the answer"),
    Signal("consistency", "sampled", "consistency:sampled",
           "agreement of k sampled chain-of-thought answers with the response (BSDetector)",
           label="Model's own answers agree"),
    Signal("likelihood_ctx", "context", "context:score",
           "likelihood of the response with the most similar rows shown first as worked examples (the dataset's "
           "own answer form is expected, so what is left is the content)",
           label="Likely after similar rows"),
    Signal("likelihood_ctx_min", "context", "context:score_min",
           "probability of the least likely response token, with the same worked examples first",
           label="No unlikely word after similar rows"),
    Signal("neighbors", "dataset", "neighbors:fit_rows",
           "agreement with similar prompts' responses (out-of-fold classifier or nearest neighbours)",
           label="Neighbours agree"),
    Signal("form", "dataset", "form:fit_rows",
           "the response's shape (copies the prompt, parses as JSON, empty) is usual among similar prompts' responses",
           label="Usual answer shape"),
    Signal("likelihood_rel", "dataset", "likelihood:fit_rows",
           "the response's likelihood ranked among the responses to the nearest prompts (no task-format effect)",
           label="Likely among neighbours' answers"),
    Signal("appended", "dataset", "appended:fit_rows",
           "no second instruction appended after the answer (merged rows: '##', '### Instruction:', a new task)",
           label="No extra instruction appended", detector=True),
    Signal("placeholder", "dataset", "placeholder:fit_rows",
           "the response is not empty, a placeholder ('N/A', '<No Output>') or a refusal",
           label="A real answer (no placeholder)", detector=True),
    Signal("unseen_input", "dataset", "unseen_input:fit_rows",
           "the prompt's input can be seen (not only a link or an attachment marker the answer pretends to read)",
           label="Input is visible", detector=True),
    Signal("artifacts", "dataset", "artifacts:fit_rows",
           "no control characters, literal escapes, HTML entities or mojibake that the dataset's answers lack",
           label="No text artifacts", detector=True),
    Signal("arithmetic", "dataset", "arithmetic:fit_rows",
           "the response's own arithmetic holds ('a op b = c' steps, unit conversions such as '7 days is 168 hours', "
           "and the stated final answer)",
           label="Arithmetic holds", detector=True),
)}


def get_signal(name: str) -> Signal:
    """The descriptor of a signal; an unknown name raises UnknownNameError listing the valid ones."""
    if name not in REGISTRY:
        raise UnknownNameError("signal", name, list(REGISTRY))
    return REGISTRY[name]


def of_kind(kind: str, among: Iterable[str] | None = None) -> tuple[str, ...]:
    """Names of the registered signals of `kind`, in registry order; only those in `among` when given.

    Read from REGISTRY at each call (never cached), so a signal registered later is included."""
    if kind not in KINDS:
        raise UnknownNameError("signal kind", kind, KINDS)
    keep = None if among is None else set(among)
    return tuple(n for n, s in REGISTRY.items() if s.kind == kind and (keep is None or n in keep))
