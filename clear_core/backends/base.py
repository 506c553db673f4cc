"""The LLM backend protocol and the plain data it returns.

Nothing here imports torch: the protocol and the output dataclasses are shared by the scoring code, the signals and
the tests, and the app must be able to import them without paying for torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, Union, runtime_checkable

import numpy as np

Messages = Sequence[dict]          # ({"role": "system"|"user"|"assistant", "content": str}, ...)
Prompt = Union[Messages, str]      # a bare string is one user message


@dataclass(frozen=True)
class ScoreItem:
    """One row rendered for the fused forward: token ids of chat_template(prompt) + response (+ end of turn)."""

    ids: tuple[int, ...]
    response_start: int            # index of the first response token in `ids`; response = ids[response_start:]
    ends_turn: bool = True         # the last id is the end-of-turn token (False when a long response was cut)

    @property
    def n_prompt(self) -> int:
        return self.response_start

    @property
    def n_response(self) -> int:
        return len(self.ids) - self.response_start


@dataclass(frozen=True)
class FusedOutput:
    """What one fused pass over a batch of ScoreItems returns (arrays aligned with the items' order).

    response_logprobs: per item, the log-probability of each response token given everything before it.
    prompt_emb / response_emb: (n, d) float32, mean-pooled hidden states of the prompt / response tokens (of the
    prompt's last `prompt_tail` tokens when forward_scores is given one).
    suffix_probs: (n, n_suffixes, n_candidates), the next-token probabilities of the candidates after each
        suffix, renormalised over the candidates (each row sums to 1).
    n_tokens: tokens run through the model (real tokens, padding excluded), for throughput figures.
    """

    response_logprobs: list[np.ndarray]
    prompt_emb: np.ndarray
    response_emb: np.ndarray
    suffix_probs: np.ndarray
    n_tokens: int
    matmul_flops: float = 0.0      # multiply-add FLOPs of the linear layers actually run (x2), padding included
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """A causal LM that scores, embeds and generates. Implementations: `hf.HFBackend` (transformers)."""

    name: str
    n_params: int
    device: str
    dtype: str  # the weights' dtype: "float32", "bfloat16", ...

    def render(self, prompt: Prompt, response: str | None = None) -> tuple[list[int], int]:
        """Chat-template token ids of the prompt (+ the response as the assistant turn, then one end-of-turn
        token): (ids, response_start)."""
        ...

    def forward_scores(self, items: Sequence[ScoreItem], suffixes: Sequence[str],
                       candidates: Sequence[str], embed_layers: Sequence[int] = (-1,),
                       prompt_tail: int = 0) -> FusedOutput:
        """One teacher-forced prefix forward per batch, then each suffix on the cached prefix. The prompt embedding
        pools the prompt's last `prompt_tail` tokens (0 = every prompt token)."""
        ...

    def token_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        """Log-probabilities of each continuation token as the assistant answer to its prompt (reference path)."""
        ...

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str],
                         answer_prefix: str = "") -> np.ndarray:
        """(n, len(candidates)) next-token probabilities of the candidates, renormalised over them."""
        ...

    def generate(self, prompts: Sequence[Prompt], n: int = 1, max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0) -> list[list[str]]:
        """n answers per prompt (greedy when temperature == 0, sampled otherwise; seeded)."""
        ...

    def embed(self, texts: Sequence[str], layers: Sequence[int] = (-1,)) -> np.ndarray:
        """(n, d) float32 mean-pooled hidden states of each text."""
        ...


def as_messages(prompt: Prompt) -> list[dict]:
    """A prompt as a list of chat messages (a bare string becomes one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]
