"""LoRA fine-tune with the tiny model: response-only labels, the loss goes down, the merged dir loads back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clear_core import finetune as ft

ROWS = [([{"role": "user", "content": f"What is {a} + {b}?"}], f"{a + b}") for a, b in
        [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]]


def test_encode_masks_the_prompt(tiny_backend):
    ids, labels = ft.encode(tiny_backend, ROWS[0][0], ROWS[0][1], max_tokens=512)
    full, start = tiny_backend.render(ROWS[0][0], ROWS[0][1])
    assert ids == full
    assert labels[:start] == [-100] * start and labels[start:] == full[start:]
    # Cut to fit: the start of the prompt goes, the response stays whole.
    short_ids, short_labels = ft.encode(tiny_backend, ROWS[0][0], ROWS[0][1], max_tokens=len(full) - 3)
    assert short_ids == full[3:] and short_labels[-(len(full) - start):] == full[start:]


def test_response_loss_matches_naive_formula(tiny_backend):
    import torch

    enc = [ft.encode(tiny_backend, p, r, 512) for p, r in ROWS[:3]]
    ids, mask, labels = ft.collate(enc, tiny_backend.pad_id)
    with torch.no_grad():
        got = float(ft.response_loss(tiny_backend.model, ids, mask, labels))
    # Naive: each row alone, sum of -log p(response token) over all response tokens, divided by their count.
    total, count = 0.0, 0
    for row_ids, row_labels in enc:
        with torch.no_grad():
            logp = torch.log_softmax(tiny_backend.model(input_ids=torch.tensor([row_ids])).logits[0].float(), -1)
        for t in range(1, len(row_ids)):
            if row_labels[t] != -100:
                total -= float(logp[t - 1, row_ids[t]])
                count += 1
    assert got == pytest.approx(total / count, rel=1e-4)


def test_finetune_lowers_loss_and_saves_a_loadable_dir(tiny_backend, tmp_path):
    from clear_core.backends import load_backend

    before = {k: v.clone() for k, v in tiny_backend.model.state_dict().items()}
    cfg = ft.FinetuneConfig(r=8, alpha=16, lr=1e-2, epochs=10, batch_size=6, dropout=0.0, seed=0)
    result = ft.finetune(tiny_backend, ROWS, tmp_path / "tuned", cfg)
    assert result.steps == 10 and result.n_rows == len(ROWS)
    first, last = np.mean(result.losses[:2]), np.mean(result.losses[-2:])
    assert last < 0.7 * first
    # The backend passed in is left unchanged (the app caches it).
    after = tiny_backend.model.state_dict()
    assert all(torch_equal(before[k], after[k]) for k in before)
    meta = json.loads((tmp_path / "tuned" / ft.CONFIG_FILE).read_text())
    assert meta["config"]["r"] == 8 and meta["config"]["epochs"] == 10 and len(meta["losses"]) == result.steps
    assert list((tmp_path / "tuned").glob("*.safetensors"))
    tuned = load_backend(str(tmp_path / "tuned"), device="cpu")
    # The loaded model is the fine-tuned one: its loss on the training rows is the low one, not the base's.
    import torch

    enc = [ft.encode(tuned, p, r, 512) for p, r in ROWS]
    ids, mask, labels = ft.collate(enc, tuned.pad_id)
    with torch.no_grad():
        tuned_loss = float(ft.response_loss(tuned.model, ids, mask, labels))
        base_loss = float(ft.response_loss(tiny_backend.model, ids, mask, labels))
    assert tuned_loss < 0.7 * base_loss


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_max_rows_samples_rows(tiny_backend, tmp_path):
    cfg = ft.FinetuneConfig(r=4, alpha=8, epochs=1, batch_size=2, max_rows=4)
    result = ft.finetune(tiny_backend, ROWS, tmp_path / "t2", cfg)
    assert result.n_rows == 4 and result.steps == 2


def test_finetune_over_a_bf16_base_on_the_cpu(tiny_model_dir, tmp_path):
    """A bf16 base (what dtype auto loads on CPUs with native bf16) trains under CPU autocast: loss falls, the
    adapters stay fp32 and the merged model loads."""
    from clear_core.backends import load_backend

    base = load_backend(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    cfg = ft.FinetuneConfig(r=8, alpha=16, lr=1e-2, epochs=10, batch_size=6, dropout=0.0, seed=0)
    result = ft.finetune(base, ROWS, tmp_path / "tuned16", cfg)
    assert np.isfinite(result.losses).all()
    assert np.mean(result.losses[-2:]) < 0.7 * np.mean(result.losses[:2])
    assert load_backend(str(tmp_path / "tuned16"), device="cpu").n_params == base.n_params


def test_curated_rows_come_from_a_finished_score_run(small_workspace):
    from clear_core.errors import ClearError

    ws = small_workspace
    info = ws.get_dataset("small")
    with pytest.raises(ClearError, match="dataset 'small' has no finished scoring run; start a score run"):
        ft.curated_rows(ws, "small")
    fix = ws.create_run(info.id, "correct", "{}", 1)
    with pytest.raises(ClearError, match=f"run {fix} is a correct run of dataset {info.id}, not a score run"):
        ft.curated_rows(ws, "small", run_id=fix)
