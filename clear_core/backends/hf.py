"""The transformers backend: device and dtype choice, and the fused scoring forward behind the Backend protocol.

Loading lives in loading.py (local dirs, hub ids) and gguf_file.py. torch and transformers are imported inside the
functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import ClearError
from .base import FusedOutput, Prompt, ScoreItem, as_messages


def resolve_device(device: str = "auto") -> str:
    """'auto' -> CUDA, then MPS, then CPU."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


CPU_DTYPE_ENV = "CLEAR_STUDIO_CPU_DTYPE"


def native_bf16_cpu() -> bool:
    """Whether this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(p() for p in probes if p is not None)
    except Exception:  # noqa: BLE001 - a probe that fails means "not known to be native"
        return False


def resolve_dtype(dtype: str, device: str):
    """'auto' -> bf16 on a GPU; on the CPU bf16 where it is native (measured 2.3x the fp32 matmul FLOP/s on an
    AVX512-BF16 EPYC), fp32 elsewhere. The environment variable CLEAR_STUDIO_CPU_DTYPE overrides the CPU choice."""
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto" and device == "cpu":
        dtype = os.environ.get(CPU_DTYPE_ENV) or ("bfloat16" if native_bf16_cpu() else "float32")
    elif dtype == "auto":
        return torch.bfloat16
    if dtype not in names:
        raise ClearError(f"unknown dtype '{dtype}'; valid: auto, {', '.join(names)}")
    return names[dtype]


def cache_keyword(module) -> str:
    """The keyword under which this transformers version takes the KV cache: `cache`, or `past_key_values`
    before that name was deprecated (passing the old one raises a FutureWarning on every forward)."""
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


class HFBackend:
    """A transformers causal LM behind the Backend protocol (see base.py)."""

    def __init__(self, model, tokenizer, name: str, device: str):
        import torch

        self.model, self.tokenizer, self.name, self.device = model, tokenizer, name, device
        self.n_params = int(model.num_parameters())
        self.dtype = str(next(model.parameters()).dtype).replace("torch.", "")  # "float32", "bfloat16", ...
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eot_id = self._end_of_turn_id()
        self._groups: dict[tuple[str, ...], tuple[list[int], list[list[int]]]] = {}
        self._suffix_ids: dict[str, list[int]] = {}
        self.n_layers = int(model.config.num_hidden_layers)
        self._cache_kw = cache_keyword(model.model)
        self._body_linear_params = sum(m.weight.numel() for m in model.model.modules()
                                       if isinstance(m, torch.nn.Linear))

    # ---- text <-> ids -------------------------------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _template(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def _end_of_turn_id(self) -> int:
        vocab = self.tokenizer.get_vocab()
        return vocab["<|im_end|>"] if "<|im_end|>" in vocab else self.tokenizer.eos_token_id

    def render(self, prompt: Prompt, response: str | None = None) -> tuple[list[int], int]:
        """(ids, response_start): chat template of the prompt with the generation prompt, then the response and its
        end-of-turn token. The end-of-turn token counts as a response token: its probability says whether the
        response is complete, which is what exposes a truncated answer."""
        messages = as_messages(prompt)
        head = self._encode(self._template(messages, True))
        if response is None:
            return head, len(head)
        return head + self._encode(response) + [self.eot_id], len(head)

    def suffix_ids(self, question: str) -> list[int]:
        """Token ids that close the assistant turn and ask `question` as a new user turn, ending with the
        generation prompt: rendered by the tokenizer's own chat template, identical for every row."""
        if question not in self._suffix_ids:
            base = [{"role": "user", "content": "U"}, {"role": "assistant", "content": "R"}]
            before = self._template(base, False)
            after = self._template(base + [{"role": "user", "content": question}], True)
            eot = self.tokenizer.convert_ids_to_tokens(self.eot_id)
            cut = before.rfind(eot)
            if not after.startswith(before) or cut < 0:
                raise ClearError(f"model {self.name}: its chat template cannot append a follow-up question")
            self._suffix_ids[question] = self._encode(before[cut + len(eot):] + after[len(before):])
        return self._suffix_ids[question]

    def candidate_groups(self, candidates: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """(variant token ids, groups of column indices): each candidate's single-token spellings ("A", " A")."""
        key = tuple(candidates)
        if key not in self._groups:
            token_ids, groups = [], []
            for cand in candidates:
                cols = []
                for variant in (cand, " " + cand):
                    ids = self._encode(variant)
                    if len(ids) == 1 and ids[0] not in token_ids:
                        token_ids.append(ids[0])
                        cols.append(len(token_ids) - 1)
                if not cols:
                    raise ClearError(f"model {self.name}: candidate '{cand}' is not a single token")
                groups.append(cols)
            self._groups[key] = (token_ids, groups)
        return self._groups[key]

    # ---- model pieces -------------------------------------------------------------------------------------------
    def _head(self, hidden, rows: list[int] | None = None):
        """LM-head logits of hidden (N, d) in fp32, over the whole vocabulary or only the given token rows."""
        import torch.nn.functional as F
        from .ops import apply_logit_transforms

        head = self.model.get_output_embeddings()
        weight = head.weight if rows is None else head.weight[rows]
        bias = getattr(head, "bias", None)
        bias = None if bias is None else (bias if rows is None else bias[rows])
        return apply_logit_transforms(F.linear(hidden, weight, bias).float(), self.model.config)

    def _body(self, ids, mask, positions, cache=None, use_cache=False, layers: Sequence[int] = ()):
        """Run the decoder; returns (final normed hidden states, cache, {layer: hidden states}).

        Layer l follows hidden_states indexing: 0 = embeddings, i = output of block i, -1 = the final normed state.
        Only the asked-for layers are kept (forward hooks), not all of them."""
        captured, hooks = {}, []
        wanted = {l % (self.n_layers + 1) for l in layers}
        for idx in wanted:
            if idx == self.n_layers:
                continue
            module = self.model.model.embed_tokens if idx == 0 else self.model.model.layers[idx - 1]

            def keep(_m, _a, out, idx=idx):
                captured[idx] = out[0] if isinstance(out, tuple) else out
            hooks.append(module.register_forward_hook(keep))
        if use_cache and cache is None:
            cache = self._new_cache()
        try:
            out = self.model.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                   position_ids=positions.to(self.device), use_cache=use_cache,
                                   **{self._cache_kw: cache})
        finally:
            for h in hooks:
                h.remove()
        if self.n_layers in wanted:
            captured[self.n_layers] = out.last_hidden_state
        return out.last_hidden_state, cache, {l: captured[l % (self.n_layers + 1)] for l in layers}

    def _new_cache(self):
        """An empty DynamicCache, filled in place by the forward. Passing one (not None) keeps the cache a Cache
        object on every transformers version: older ones returned a tuple for a None, which has no crop()."""
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.model.config)  # layer kinds (e.g. sliding windows) from the config
        except TypeError:  # transformers before DynamicCache took a config
            return DynamicCache()

    def _flops(self, n_rows: int, q_len: int, kv_len: int, head_flops: float) -> float:
        """Matmul FLOPs actually run: body linears on every (padded) position, attention's two products over the
        full rectangle, plus the LM head's (`head_flops`, counted by the caller for the rows it computed)."""
        cfg = self.model.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        attn = 2 * 2 * n_rows * cfg.num_attention_heads * q_len * kv_len * head_dim * self.n_layers
        return 2.0 * self._body_linear_params * n_rows * q_len + attn + head_flops

    # ---- the fused path -----------------------------------------------------------------------------------------
    def forward_scores(self, items: Sequence[ScoreItem], suffixes: Sequence[str] = (),
                       candidates: Sequence[str] = ("A", "B", "C"), embed_layers: Sequence[int] = (-1,),
                       prompt_tail: int = 0) -> FusedOutput:
        """One teacher-forced forward over each item (left-padded batch), then each follow-up question in `suffixes`
        as a new user turn on the cached prefix (cache cropped back between questions). With no embed_layers the
        embeddings come back with 0 columns; the prompt embedding pools the last `prompt_tail` prompt tokens (0 =
        all)."""
        import torch
        from .ops import group_softmax, masked_mean, pad_left

        with torch.inference_mode():
            ids, mask, pos = pad_left([it.ids for it in items], self.pad_id)
            B, L = ids.shape
            hidden, cache, layer_h = self._body(ids, mask, pos, use_cache=bool(suffixes), layers=embed_layers)
            # Response token t is predicted at position t - 1: gather only those positions for the LM head.
            rows, cols, targets, sizes = [], [], [], []
            for i, it in enumerate(items):
                off = L - len(it.ids)
                t = torch.arange(it.response_start, len(it.ids))
                rows.append(torch.full_like(t, i)), cols.append(off + t - 1), targets.append(ids[i, off + t])
                sizes.append(len(t))
            rows, cols, targets = torch.cat(rows), torch.cat(cols), torch.cat(targets)
            logp = torch.log_softmax(self._head(hidden[rows.to(self.device), cols.to(self.device)]), dim=-1)
            token_lp = logp.gather(1, targets.to(self.device)[:, None])[:, 0].cpu().numpy().astype(np.float64)
            response_lp = list(np.split(token_lp, np.cumsum(sizes)[:-1]))
            col = torch.arange(L)[None, :]
            start = (L - torch.tensor([len(it.ids) for it in items]))[:, None]
            resp_start = start + torch.tensor([it.response_start for it in items])[:, None]
            first = torch.maximum(start, resp_start - prompt_tail) if prompt_tail > 0 else start
            prompt_mask = ((col >= first) & (col < resp_start)).to(self.device)
            resp_mask = (col >= resp_start).to(self.device)
            if embed_layers:
                pe = torch.stack([masked_mean(layer_h[l].float(), prompt_mask) for l in embed_layers]).mean(0)
                re = torch.stack([masked_mean(layer_h[l].float(), resp_mask) for l in embed_layers]).mean(0)
            else:  # no embeddings wanted (e.g. the in-context likelihood pass)
                pe = re = torch.zeros((B, 0))
            flops = self._flops(B, L, L, 2.0 * hidden.shape[-1] * self.model.config.vocab_size * len(rows))
            n_tokens = int(mask.sum())

            probs = np.zeros((B, len(suffixes), len(candidates)), dtype=np.float64)
            if suffixes:
                token_ids, groups = self.candidate_groups(candidates)
                lengths = mask.sum(1, keepdim=True)
                for s, question in enumerate(suffixes):
                    s_ids = torch.tensor(self.suffix_ids(question), dtype=torch.long)
                    S = len(s_ids)
                    s_mask = torch.cat([mask, torch.ones((B, S), dtype=torch.long)], dim=1)
                    s_pos = lengths + torch.arange(S)[None, :]
                    last, cache, _ = self._body(s_ids.expand(B, S), s_mask, s_pos, cache=cache, use_cache=True)
                    logits = self._head(last[:, -1], rows=token_ids)
                    probs[:, s] = group_softmax(logits, groups).cpu().numpy()
                    cache.crop(-S)
                    flops += self._flops(B, S, L + S, 2.0 * hidden.shape[-1] * len(token_ids) * B)
                    n_tokens += B * S
        return FusedOutput(response_logprobs=response_lp, prompt_emb=pe.cpu().numpy().astype(np.float32),
                           response_emb=re.cpu().numpy().astype(np.float32), suffix_probs=probs,
                           n_tokens=n_tokens, matmul_flops=flops)

    # ---- generic / reference paths ------------------------------------------------------------------------------
    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), vocab) fp32 logits of one unpadded sequence through the model's own forward (reference)."""
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([list(ids)], device=self.device))
        return out.logits[0].float().cpu().numpy()

    def token_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        """Log-probabilities of each continuation token (with end of turn) as the assistant answer; one unbatched
        full forward per row."""
        result = []
        for prompt, cont in zip(prompts, continuations):
            ids, start = self.render(prompt, cont)
            logits = self.logits(ids).astype(np.float64)
            lp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
            result.append(lp[np.arange(start - 1, len(ids) - 1), ids[start:]])
        return result

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str],
                         answer_prefix: str = "") -> np.ndarray:
        """(n, len(candidates)) probabilities of each candidate as the assistant's next token (after
        `answer_prefix`), summed over its spellings ("A", " A") and renormalised over the candidates."""
        import torch
        from .ops import group_softmax, pad_left

        token_ids, groups = self.candidate_groups(candidates)
        if not prompts:
            return np.zeros((0, len(candidates)))
        seqs = [self.render(p)[0] + (self._encode(answer_prefix) if answer_prefix else []) for p in prompts]
        with torch.inference_mode():
            ids, mask, pos = pad_left(seqs, self.pad_id)
            hidden, _, _ = self._body(ids, mask, pos)
            return group_softmax(self._head(hidden[:, -1], rows=token_ids), groups).cpu().numpy().astype(np.float64)

    def generate(self, prompts: Sequence[Prompt], n: int = 1, max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0) -> list[list[str]]:
        """n answers per prompt, batched with left padding; greedy at temperature 0, else sampled from the full
        distribution (no top-k / top-p) with torch seeded by `seed`, so the same call gives the same samples."""
        import torch
        from .ops import pad_left

        if not prompts:
            return []
        ids, mask, _ = pad_left([self.render(p)[0] for p in prompts], self.pad_id)
        sample = temperature > 0
        kw = dict(do_sample=True, temperature=float(temperature), top_k=0, top_p=1.0) if sample else dict(do_sample=False)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                      max_new_tokens=max_new_tokens, num_return_sequences=n, pad_token_id=self.pad_id,
                                      eos_token_id=[self.eot_id, self.tokenizer.eos_token_id], **kw)
        texts = self.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        return [[t.strip() for t in texts[i * n:(i + 1) * n]] for i in range(len(prompts))]

    def embed(self, texts: Sequence[str], layers: Sequence[int] = (-1,)) -> np.ndarray:
        """(n, d) float32: mean-pooled hidden states of each raw text (no chat template), averaged over `layers`."""
        import torch
        from .ops import masked_mean, pad_left

        with torch.inference_mode():
            ids, mask, pos = pad_left([self._encode(t) or [self.pad_id] for t in texts], self.pad_id)
            _, _, layer_h = self._body(ids, mask, pos, layers=layers)
            m = mask.to(self.device)
            out = torch.stack([masked_mean(layer_h[l].float(), m) for l in layers]).mean(0)
        return out.cpu().numpy().astype(np.float32)
