"""LoRA fine-tune (peft) of a causal LM on the rows the Auto-Filter kept: CLEAR's fine-tuned correction model and
the downstream comparison (noisy vs curated vs clean data).

Each row is rendered with the model's chat template (prompt + response as the assistant turn, through the
backend's own `render`), and the loss is the cross-entropy of the response tokens only. The adapters are merged
into the weights and the result saved as a plain model dir (safetensors + tokenizer) that `load_backend(dir)`
loads, with the FinetuneConfig and the loss curve beside it in `finetune.json`. Runs on GPU or, slowly, CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .atomic import atomic_open
from .errors import ClearError

CONFIG_FILE = "finetune.json"


@dataclass(frozen=True)
class FinetuneConfig:
    """LoRA settings. Stored as JSON in the output dir."""

    r: int = 16  # LoRA rank
    alpha: int = 32  # LoRA scaling numerator (scale = alpha / r)
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lr: float = 2e-4
    epochs: int = 1
    batch_size: int = 8
    max_rows: int | None = None  # a seeded sample of the rows when set
    max_tokens: int = 512  # per row; longer rows lose the start of the prompt
    warmup_steps: int = 0
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FinetuneResult:
    out_dir: str
    n_rows: int
    steps: int
    losses: tuple[float, ...]  # mean response-token loss of each step
    seconds: float
    config: FinetuneConfig = field(default_factory=FinetuneConfig)


def encode(backend, prompt, response: str, max_tokens: int) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one row: labels are -100 on the prompt tokens, so only the response is learned."""
    ids, start = backend.render(list(prompt), response)
    ids = list(ids)
    if len(ids) > max_tokens:  # cut from the left of the prompt, keep the whole response when it fits
        cut = min(len(ids) - max_tokens, start)
        ids, start = ids[cut:], start - cut
        ids = ids[:max_tokens]
    labels = [-100] * start + ids[start:]
    return ids, labels


def collate(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on padding)."""
    import torch

    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(encoded):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, :len(lab)] = torch.tensor(lab)
        mask[i, :len(ids)] = 1
    return input_ids, mask, labels


def response_loss(model, input_ids, mask, labels):
    """Mean cross-entropy over the response tokens (labels != -100), next-token shifted."""
    import torch.nn.functional as F

    logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
    target = labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=-100)


def finetune(model, rows: Sequence[tuple[Sequence[dict], str]], out_dir: str | Path,
             config: FinetuneConfig = FinetuneConfig(), device: str = "auto",
             progress: Callable[[int, int, float], None] | None = None) -> FinetuneResult:
    """LoRA fine-tune `model` (a load_backend spec: "default", "tiny", a dir, a HF id; or a loaded backend, which
    is copied and left unchanged) on (prompt messages, response) rows; save the merged model to `out_dir`.

    progress(step, total_steps, loss) is called after each optimiser step.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    if not rows:
        raise ClearError("no rows to fine-tune on (did the filter keep any?)")
    backend = _backend(model, device)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(rows))
    if config.max_rows is not None:
        order = order[:config.max_rows]
    encoded = [encode(backend, rows[i][0], rows[i][1], config.max_tokens) for i in order]
    encoded = [e for e in encoded if any(x != -100 for x in e[1][1:])]
    if not encoded:
        raise ClearError("every row has an empty response after tokenisation")
    torch.manual_seed(config.seed)
    base = copy.deepcopy(backend.model)  # the backend's own weights stay as they are (the app caches it)
    base.config.use_cache = False
    lora = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, bias="none",
                      target_modules=[m for m in config.target_modules if _has_module(base, m)] or None,
                      task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, lora)
    dev = next(base.parameters()).device
    # bf16 autocast on a GPU, and on the CPU when the base was loaded in bf16 (CPUs with native bf16 matmuls)
    autocast = dev.type == "cuda" or next(base.parameters()).dtype == torch.bfloat16
    params = [p for p in peft_model.parameters() if p.requires_grad]
    for p in params:  # adapters train in fp32 even over a half-precision base
        p.data = p.data.float()
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, total, config.warmup_steps))
    pad_id = backend.tokenizer.pad_token_id if backend.tokenizer.pad_token_id is not None else 0
    losses, step, t0 = [], 0, time.perf_counter()
    peft_model.train()
    for epoch in range(config.epochs):
        perm = np.random.default_rng(config.seed + epoch).permutation(len(encoded))
        for s in range(0, len(perm), config.batch_size):
            ids, mask, labels = (t.to(dev) for t in collate([encoded[i] for i in perm[s:s + config.batch_size]], pad_id))
            with torch.autocast(device_type=dev.type, enabled=autocast, dtype=torch.bfloat16):
                loss = response_loss(peft_model, ids, mask, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step, total, losses[-1])
    merged = peft_model.merge_and_unload()
    merged.config.use_cache = True
    result = FinetuneResult(str(out_dir), len(encoded), step, tuple(losses), time.perf_counter() - t0, config)
    save(merged, backend.tokenizer, out_dir, result, source=getattr(backend, "name", str(model)))
    return result


def save(model, tokenizer, out_dir, result: FinetuneResult, source: str) -> Path:
    """Write the merged model (safetensors), the tokenizer and finetune.json to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    meta = {"base_model": source, "config": result.config.to_dict(), "n_rows": result.n_rows, "steps": result.steps,
            "losses": list(result.losses), "seconds": result.seconds}
    with atomic_open(out / CONFIG_FILE) as f:  # written last and whole: the mark of a finished save
        f.write(json.dumps(meta, indent=2))
    return out


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then linear decay to 10 % of the peak rate."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return max(0.1, 1.0 - 0.9 * frac)


def _has_module(model, name: str) -> bool:
    return any(n.endswith("." + name) for n, _ in model.named_modules())


def _backend(model, device: str):
    if isinstance(model, (str, Path)):
        from .backends import load_backend
        return load_backend(str(model), device=device)
    return model


# ---------------------------------------------------------------------------------------------- curated rows
def curated_rows(ws, dataset, run_id: int | None = None, thresholds=None) -> list[tuple[list[dict], str]]:
    """(prompt, response) rows a fine-tune should see: the keep band of the scoring run, with people's and
    `curate --auto`'s decisions applied (drop removes a row; accept / edit replace its response; keep keeps it).
    """
    from .filtering import bands, run_confidence, run_thresholds

    info = ws.get_dataset(dataset)
    run = ws.score_run(info, run_id)
    thresholds = thresholds or run_thresholds(ws, run.id)
    rows, conf = run_confidence(ws, run.id)
    keep = set(int(r) for r, b in zip(rows, bands(conf, thresholds)) if b == "keep")
    text: dict[int, str | None] = {}
    decisions = ws.current_decisions(info.id)
    for d in decisions.itertuples(index=False):
        r = int(d.row_idx)
        if d.action == "drop":
            keep.discard(r)
        elif d.action in ("keep", "accept", "edit"):
            keep.add(r)
            if d.action != "keep" and isinstance(d.text, str):
                text[r] = d.text
    chosen = sorted(keep)
    if not chosen:
        return []
    return [(list(e.prompt), text.get(e.row_idx, e.response)) for e in ws.rows(info.id, chosen)]
