"""Small tensor helpers of the fused scoring path, each tested against its naive formula.

Imported only by code that already runs a model (it imports torch at module level).
"""

from __future__ import annotations

from typing import Sequence

import torch


def pad_left(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad token id lists: (ids, attention_mask, position_ids), each (B, L).

    Left padding puts every sequence's last token at the same column, so a suffix shared by all rows can be appended
    to a KV cache with no per-row padding. Position ids count real tokens only, so a padded row sees exactly the
    positions it would see alone.
    """
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, width - len(s):] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return ids, mask, positions


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden (B, L, d) over the positions where mask (B, L) is 1; a row with no position gives zeros."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def group_softmax(logits: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Probabilities of candidate groups renormalised over the groups.

    logits (B, V') holds the logits of the variant tokens (columns); group g owns the columns groups[g] (e.g. "A"
    and " A"). P(group) = sum of its variants' softmax probabilities / sum over all groups; the full-vocabulary
    normaliser cancels, so only the variant columns are needed: softmax over each group's logsumexp.
    """
    per_group = torch.stack([torch.logsumexp(logits[:, list(cols)], dim=-1) for cols in groups], dim=-1)
    return torch.softmax(per_group.float(), dim=-1)


def apply_logit_transforms(logits: torch.Tensor, config) -> torch.Tensor:
    """The final-logit transforms some architectures apply after the LM head (scale, soft-capping)."""
    scale = getattr(config, "logit_scale", None)
    if scale:
        logits = logits * scale
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
