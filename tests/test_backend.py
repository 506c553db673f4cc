"""The transformers backend on the tiny random model: loading, the fused forward against naive references."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from clear_core.backends import ScoreItem, load_backend
from clear_core.errors import ClearError
from clear_core.signals import likelihood, reflection

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 3 = ?"}],
    [{"role": "user", "content": "Sentiment of: profit rose sharply in the quarter, beating every estimate."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a colour."}],
]
RESPONSES = ["Paris", "5", "positive sentiment because the profit rose", "Blue is a colour of the sky."]


def _items(backend):
    return [ScoreItem(*map(lambda x: tuple(x) if isinstance(x, list) else x, backend.render(p, r)))
            for p, r in zip(PROMPTS, RESPONSES)]


def test_import_does_not_import_torch():
    code = ("import sys; import clear_core.backends, clear_core.scoring, clear_core.signals; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_pad_left_and_masked_mean_match_naive():
    import torch

    from clear_core.backends.ops import masked_mean, pad_left

    seqs = [[5, 6, 7], [8], [9, 10]]
    ids, mask, pos = pad_left(seqs, pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 9, 10]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    assert pos[mask.bool()].tolist() == [0, 1, 2, 0, 0, 1]
    h = torch.randn(3, 3, 4)
    got = masked_mean(h, mask)
    for i, s in enumerate(seqs):
        assert torch.allclose(got[i], h[i, 3 - len(s):].mean(0), atol=1e-6)


def test_group_softmax_matches_full_softmax_renormalised():
    import torch

    from clear_core.backends.ops import group_softmax

    logits = torch.randn(4, 50)
    groups_tokens = [[3, 7], [11], [20, 21]]
    cols = [t for g in groups_tokens for t in g]
    groups = [[0, 1], [2], [3, 4]]
    got = group_softmax(logits[:, cols], groups).numpy()
    p = torch.softmax(logits.double(), -1).numpy()
    want = np.stack([p[:, g].sum(1) for g in groups_tokens], axis=1)
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_render_splits_prompt_and_response(tiny_backend):
    ids, start = tiny_backend.render(PROMPTS[0], "Paris")
    head, head_start = tiny_backend.render(PROMPTS[0])
    assert ids[:start] == head and head_start == len(head)
    assert tiny_backend.tokenizer.decode(ids[start:-1]) == "Paris"
    assert ids[-1] == tiny_backend.eot_id
    text = tiny_backend.tokenizer.decode(ids)
    assert text.endswith("<|im_start|>assistant\nParis<|im_end|>")
    suffix = tiny_backend.tokenizer.decode(tiny_backend.suffix_ids("Sure?"))
    assert suffix == "\n<|im_start|>user\nSure?<|im_end|>\n<|im_start|>assistant\n"


def test_fused_logprobs_equal_token_by_token_forwards(tiny_backend):
    items = _items(tiny_backend)
    out = tiny_backend.forward_scores(items, (), embed_layers=(-1,))
    for item, lp in zip(items, out.response_logprobs):
        naive = likelihood.naive_token_logprobs(tiny_backend, list(item.ids), item.response_start)
        assert len(lp) == item.n_response
        np.testing.assert_allclose(lp, naive, atol=1e-4)
    # the values vary: a wrong position or target would not reproduce them
    assert np.ptp(np.concatenate(out.response_logprobs)) > 1.0


def test_batched_padded_equals_one_at_a_time(tiny_backend):
    items = _items(tiny_backend)
    both = tiny_backend.forward_scores(items, reflection.QUESTIONS, embed_layers=(1, -1))
    assert len({len(it.ids) for it in items}) == len(items)  # really padded
    for i, item in enumerate(items):
        one = tiny_backend.forward_scores([item], reflection.QUESTIONS, embed_layers=(1, -1))
        np.testing.assert_allclose(both.response_logprobs[i], one.response_logprobs[0], atol=1e-4)
        np.testing.assert_allclose(both.prompt_emb[i], one.prompt_emb[0], atol=1e-4)
        np.testing.assert_allclose(both.response_emb[i], one.response_emb[0], atol=1e-4)
        np.testing.assert_allclose(both.suffix_probs[i], one.suffix_probs[0], atol=1e-4)
    assert both.n_tokens == sum(len(it.ids) for it in items) + len(items) * sum(
        len(tiny_backend.suffix_ids(q)) for q in reflection.QUESTIONS)


def test_cached_reflection_equals_scratch_forward(tiny_backend):
    items = _items(tiny_backend)
    out = tiny_backend.forward_scores(items, reflection.QUESTIONS)
    assert out.suffix_probs.shape == (len(items), 2, 3)
    np.testing.assert_allclose(out.suffix_probs.sum(-1), 1.0, atol=1e-6)
    for i, item in enumerate(items):
        for q, question in enumerate(reflection.QUESTIONS):
            naive = reflection.naive_letter_probs(tiny_backend, list(item.ids), question)
            np.testing.assert_allclose(out.suffix_probs[i, q], naive, atol=1e-4)
    # the two questions see different suffixes, so the cache was cropped rather than extended
    assert not np.allclose(out.suffix_probs[:, 0], out.suffix_probs[:, 1], atol=1e-3)


def test_embeddings_are_mean_pooled_hidden_states(tiny_backend):
    import torch

    items = _items(tiny_backend)
    out = tiny_backend.forward_scores(items, (), embed_layers=(1,))
    for i, item in enumerate(items):
        with torch.inference_mode():
            hs = tiny_backend.model(input_ids=torch.tensor([item.ids]), output_hidden_states=True).hidden_states[1][0]
        np.testing.assert_allclose(out.prompt_emb[i], hs[:item.response_start].mean(0).numpy(), atol=1e-4)
        np.testing.assert_allclose(out.response_emb[i], hs[item.response_start:].mean(0).numpy(), atol=1e-4)
    last = tiny_backend.forward_scores(items, (), embed_layers=(-1,))
    assert not np.allclose(last.prompt_emb, out.prompt_emb, atol=1e-3)


def test_prompt_tail_pools_the_last_prompt_tokens_only(tiny_backend):
    import torch

    items = _items(tiny_backend)
    tail = min(it.response_start for it in items) - 1  # shorter than every prompt here
    out = tiny_backend.forward_scores(items, (), embed_layers=(1,), prompt_tail=tail)
    whole = tiny_backend.forward_scores(items, (), embed_layers=(1,))
    long = tiny_backend.forward_scores(items, (), embed_layers=(1,), prompt_tail=10_000)
    for i, item in enumerate(items):
        with torch.inference_mode():
            hs = tiny_backend.model(input_ids=torch.tensor([item.ids]), output_hidden_states=True).hidden_states[1][0]
        start = item.response_start
        np.testing.assert_allclose(out.prompt_emb[i], hs[start - tail:start].mean(0).numpy(), atol=1e-4)
        np.testing.assert_allclose(out.response_emb[i], whole.response_emb[i], atol=1e-5)  # responses pool whole
    assert not np.allclose(out.prompt_emb, whole.prompt_emb, atol=1e-3)
    np.testing.assert_allclose(long.prompt_emb, whole.prompt_emb, atol=1e-5)  # a tail past the prompt is all of it


def test_runs_stored_before_prompt_tail_keep_pooling_the_whole_prompt():
    from clear_core.config import ScoreConfig

    old = {k: v for k, v in json.loads(ScoreConfig().to_json()).items() if k != "prompt_tail_tokens"}
    assert ScoreConfig.from_dict(old).prompt_tail_tokens == 0
    assert ScoreConfig.from_dict(json.loads(ScoreConfig().to_json())).prompt_tail_tokens == ScoreConfig().prompt_tail_tokens
    assert ScoreConfig().prompt_tail_tokens > 0


def test_next_token_probs_match_full_softmax(tiny_backend):
    probs = tiny_backend.next_token_probs(PROMPTS, ["Yes", "No"])
    assert probs.shape == (len(PROMPTS), 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    token_ids, groups = tiny_backend.candidate_groups(["Yes", "No"])
    for i, p in enumerate(PROMPTS):
        logits = tiny_backend.logits(tiny_backend.render(p)[0])[-1].astype(np.float64)
        full = np.exp(logits - np.logaddexp.reduce(logits))
        want = np.array([sum(full[token_ids[c]] for c in g) for g in groups])
        np.testing.assert_allclose(probs[i], want / want.sum(), atol=1e-5)


def test_token_logprobs_reference_matches_fused(tiny_backend):
    items = _items(tiny_backend)
    fused = tiny_backend.forward_scores(items, ())
    ref = tiny_backend.token_logprobs(PROMPTS, RESPONSES)
    for a, b in zip(fused.response_logprobs, ref):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_generate_is_seeded(tiny_backend):
    a = tiny_backend.generate(PROMPTS[:2], n=3, max_new_tokens=6, temperature=1.0, seed=7)
    b = tiny_backend.generate(PROMPTS[:2], n=3, max_new_tokens=6, temperature=1.0, seed=7)
    c = tiny_backend.generate(PROMPTS[:2], n=3, max_new_tokens=6, temperature=1.0, seed=8)
    assert a == b and len(a) == 2 and all(len(x) == 3 for x in a)
    assert a != c
    g1 = tiny_backend.generate(PROMPTS[:1], n=1, max_new_tokens=6)
    assert g1 == tiny_backend.generate(PROMPTS[:1], n=1, max_new_tokens=6, seed=99)  # greedy ignores the seed


def test_embed_shape_and_padding_invariance(tiny_backend):
    texts = ["short", "a much longer text than the first one"]
    both = tiny_backend.embed(texts)
    assert both.shape == (2, tiny_backend.model.config.hidden_size) and both.dtype == np.float32
    np.testing.assert_allclose(both[0], tiny_backend.embed(texts[:1])[0], atol=1e-4)


def test_tiny_model_is_deterministic(tmp_path):
    from safetensors.numpy import load_file

    from clear_core.backends.tiny import build_tiny_model

    a, b = build_tiny_model(tmp_path / "a"), build_tiny_model(tmp_path / "b")
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temp dir left behind


def test_save_and_reload_round_trip(tiny_backend, tmp_path):
    out = tmp_path / "copy"
    tiny_backend.model.save_pretrained(out, safe_serialization=True)
    tiny_backend.tokenizer.save_pretrained(out)
    again = load_backend(str(out), device="cpu")
    ids, start = tiny_backend.render(PROMPTS[1], RESPONSES[1])
    assert again.render(PROMPTS[1], RESPONSES[1]) == (ids, start)
    np.testing.assert_allclose(again.logits(ids), tiny_backend.logits(ids), atol=1e-5)
    assert again.n_params == tiny_backend.n_params > 0 and again.device == "cpu"


def test_loading_refuses_dirs_without_safetensors(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ClearError, match="safetensors"):
        load_backend(str(tmp_path), device="cpu")
    with pytest.raises(ClearError, match="not 'default', 'tiny'"):
        load_backend(str(tmp_path / "missing" / "dir"), device="cpu")
    with pytest.raises(ClearError, match="does not exist"):
        load_backend(str(tmp_path / "missing.gguf"), device="cpu")


def test_auto_dtype_bf16_on_native_bf16_cpus_fp32_elsewhere(monkeypatch):
    import torch

    from clear_core.backends import hf

    monkeypatch.delenv(hf.CPU_DTYPE_ENV, raising=False)
    monkeypatch.setattr(hf, "native_bf16_cpu", lambda: True)
    assert hf.resolve_dtype("auto", "cpu") is torch.bfloat16
    monkeypatch.setattr(hf, "native_bf16_cpu", lambda: False)
    assert hf.resolve_dtype("auto", "cpu") is torch.float32
    assert hf.resolve_dtype("auto", "cuda") is torch.bfloat16
    monkeypatch.setenv(hf.CPU_DTYPE_ENV, "float32")
    monkeypatch.setattr(hf, "native_bf16_cpu", lambda: True)
    assert hf.resolve_dtype("auto", "cpu") is torch.float32  # the override wins
    assert hf.resolve_dtype("bf16", "cpu") is torch.bfloat16  # an explicit dtype is kept
    with pytest.raises(ClearError, match="unknown dtype"):
        hf.resolve_dtype("int3", "cpu")


def test_bf16_backend_scores_close_to_fp32(tiny_model_dir):
    """The same rows through a bf16 and an fp32 load of the tiny model: log-probs agree within a few per cent (bf16 keeps ~3 significant digits per layer)."""
    from clear_core.backends import load_backend

    prompts = [[{"role": "user", "content": "Name a colour."}], [{"role": "user", "content": "2 + 2?"}]]
    responses = ["Red.", "It is 4."]
    lp32 = load_backend(str(tiny_model_dir), device="cpu", dtype="float32").token_logprobs(prompts, responses)
    lp16 = load_backend(str(tiny_model_dir), device="cpu", dtype="bfloat16").token_logprobs(prompts, responses)
    for a, b in zip(lp32, lp16):
        assert a.shape == b.shape and np.allclose(a, b, rtol=0.05, atol=0.05)


def test_scoring_and_generating_warn_nothing(tiny_backend, capfd):
    """The cache goes through the current transformers API: no FutureWarning (`past_key_values` is deprecated) and
    no deprecation line on stderr, which the CLI would print on every batch."""
    import logging
    import warnings

    from clear_core.config import preset_config
    from clear_core.scoring import Row, score_batch

    cache_clear = getattr(getattr(logging.Logger, "warning_once", None), "cache_clear", None)
    if cache_clear is not None:  # transformers logs each deprecation once per process: make this call count
        cache_clear()
    rows = [Row(i, p, r) for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES))]
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        res = score_batch(tiny_backend, rows, preset_config("thorough", k_samples=2))
        tiny_backend.generate(PROMPTS[:2], n=2, max_new_tokens=4, temperature=1.0)
    assert res.errors == {} and {"reflection", "consistency"} <= set(res.values)
    assert "deprecated" not in capfd.readouterr().err
