"""GPU throughput of the fused scoring pass on random-weight models of real shapes (prints figures; not a test).

    python bench/gpu.py [--shapes qwen2.5-0.5b,qwen2.5-1.5b,llama-3.1-8b] [--rows 256] [--forward-tokens 16384]
        [--vllm] [--cpu-smoke]

Needs only torch, transformers, numpy (and pandas/pyarrow, which the project imports): no weights, no network.
Each model is built from its config alone (random bf16 weights, made on the GPU); the tokenizer is a word-level
one built here with a ChatML template, so a row of N words is N tokens and the real rendering code runs. Per shape
it prints, measured in the same run:
1. the bf16 matmul peak of this GPU (torch.mm on large square matrices, best of a few);
2. the `fast` preset's row signals (likelihood, likelihood_min, likelihood_end, reflection's two questions on the
   KV cache, the embeddings) through scoring.score_batch: tokens/s and the fraction of that peak its matmul FLOPs
   reach (target >= 0.5 at 1.5B and above);
3. with --vllm, where vLLM is installed: the same rows through the vLLM backend with dummy weights (no embedder),
   tokens/s and the fraction of peak of 2 x its linear-layer parameters per token (an estimate: vLLM reports no
   FLOPs).
Without a GPU it says so and stops (--cpu-smoke runs a small shape on the CPU, to check the script itself).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # run as a script from anywhere: the project's package is beside bench/
    sys.path.insert(0, str(ROOT))

# Real shapes (the published configs' numbers); the weights are random.
SHAPES = {
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                         rope_theta=1e6),
    "qwen2.5-1.5b": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                         rope_theta=1e6),
    "llama-3.1-8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False,
                         rope_theta=5e5),
    "smoke": dict(model_type="llama", hidden_size=128, intermediate_size=344, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=4096, tie_word_embeddings=True,
                  rope_theta=1e4),
}
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
N_WORDS = 2000


def build_tokenizer():
    """A word-level tokenizer (w0 ... w1999, the letters, ChatML's markers) with a ChatML chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<|im_start|>", "<|im_end|>", "[UNK]", "A", "B", "C", "user", "assistant", "system"]
    words += [f"w{i}" for i in range(N_WORDS)]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="[UNK]", chat_template=CHATML)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    return tok


def make_config(shape: str):
    from transformers import AutoConfig

    spec = dict(SHAPES[shape])
    cfg = AutoConfig.for_model(spec.pop("model_type"), **spec, max_position_embeddings=32768,
                               bos_token_id=0, eos_token_id=1, pad_token_id=1)
    cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
    return cfg


def random_rows(n: int, seed: int = 0) -> list[tuple[int, list[dict], str]]:
    """Rows with SFT-like lengths: prompts of 64-512 words, responses of 16-256 (one token a word)."""
    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(f"w{rng.randrange(N_WORDS)}" for _ in range(k))
    return [(i, [{"role": "user", "content": text(rng.randint(64, 512))}], text(rng.randint(16, 256)))
            for i in range(n)]


def matmul_peak(device: str, n: int = 8192, repeats: int = 10) -> float:
    """Best-of-`repeats` FLOP/s of an n x n matmul on `device`, in the models' dtype there (bf16 on a GPU, fp32 on
    the CPU of --cpu-smoke)."""
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 2):
        _sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def score_rows(backend, rows, config, device: str) -> dict:
    """score_batch over `rows` in chunks of config.batch_size (as the pipeline does): seconds, tokens, FLOPs."""
    from clear_core.scoring import score_batch

    tokens, flops = 0, 0.0
    _sync(device)
    t = time.perf_counter()
    for lo in range(0, len(rows), config.batch_size):
        res = score_batch(backend, rows[lo:lo + config.batch_size], config)
        if res.errors:
            raise RuntimeError(f"scoring failed: {next(iter(res.errors.values()))}")
        tokens, flops = tokens + res.n_tokens, flops + res.matmul_flops
    _sync(device)
    return dict(s=time.perf_counter() - t, tokens=tokens, flops=flops)


def bench_hf(shape: str, rows, args, device: str, peak: float) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from clear_core.backends.hf import HFBackend
    from clear_core.config import preset_config

    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(make_config(shape), dtype=dtype)
    backend = HFBackend(model.eval(), build_tokenizer(), shape, device)
    config = preset_config("fast", batch_size=args.batch_size, forward_tokens=args.forward_tokens,
                           max_tokens=args.max_tokens, signals=("likelihood", "likelihood_min", "likelihood_end",
                                                                "reflection"))
    score_rows(backend, rows[:args.batch_size], config, device)    # warm-up: kernels, allocator
    res = score_rows(backend, rows, config, device)
    print(f"{shape:>14} fused  {backend.n_params / 1e6:5.0f}M params: {len(rows) / res['s']:8.1f} rows/s "
          f"{res['tokens'] / res['s']:10.0f} tokens/s   {res['flops'] / res['s'] / 1e12:7.3g} TFLOP/s = "
          f"{res['flops'] / res['s'] / peak:.2f} of the measured peak", flush=True)
    del backend, model
    if device == "cuda":
        torch.cuda.empty_cache()


def bench_vllm(shape: str, rows, args, device: str, peak: float) -> None:
    """The same rows through the vLLM backend, dummy weights (vLLM initialises them itself)."""
    from vllm import LLM

    from clear_core.backends.vllm import VLLMBackend
    from clear_core.scoring import prepare_item
    from clear_core.signals import reflection

    cfg = make_config(shape)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.save_pretrained(tmp)
        build_tokenizer().save_pretrained(tmp)
        gpu = device == "cuda"
        llm = LLM(model=tmp, load_format="dummy", dtype="bfloat16" if gpu else "float32", seed=0,
                  max_model_len=args.max_tokens + 128, gpu_memory_utilization=0.85 if gpu else 0.15,
                  enable_prefix_caching=True, enforce_eager=not gpu)
        backend = VLLMBackend(llm, f"vllm:{shape}", None, 0)
        items = [prepare_item(backend, p, r, args.max_tokens) for _, p, r in rows]
        backend.forward_scores(items[:args.batch_size], reflection.QUESTIONS, embed_layers=())   # warm-up
        t = time.perf_counter()
        out = backend.forward_scores(items, reflection.QUESTIONS, embed_layers=())
        s = time.perf_counter() - t
        backend.close()
    h, inter, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    kv = cfg.num_key_value_heads * cfg.head_dim
    linear = L * (2 * h * h + 2 * h * kv + 3 * h * inter)
    print(f"{shape:>14} vLLM   {len(rows) / s:8.1f} rows/s {out.n_tokens / s:10.0f} tokens/s   "
          f"~{2 * linear * out.n_tokens / s / peak:.2f} of the measured peak (2 x linear params per token)",
          flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="qwen2.5-0.5b,qwen2.5-1.5b,llama-3.1-8b")
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64, help="rows per score_batch call")
    p.add_argument("--forward-tokens", type=int, default=16384, help="padded tokens per forward")
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--vllm", action="store_true", help="also run the vLLM backend with dummy weights")
    p.add_argument("--cpu-smoke", action="store_true", help="no GPU: run the small 'smoke' shape on the CPU")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.cpu_smoke:
        print("no GPU present (torch.cuda.is_available() is False): nothing measured. Run this on a machine with "
              "a CUDA GPU, or pass --cpu-smoke to check the script on a small shape.")
        return 0
    device = "cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu"
    shapes = ["smoke"] if args.cpu_smoke else [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        p.error(f"unknown shape {unknown[0]}; valid: {', '.join(SHAPES)}")
    if args.cpu_smoke:
        args.rows, args.batch_size, args.forward_tokens, args.max_tokens = min(args.rows, 8), 4, 2048, 512
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    peak = matmul_peak(device, n=8192 if device == "cuda" else 1024)
    print(f"{name}: {'bf16' if device == 'cuda' else 'fp32'} matmul peak measured {peak / 1e12:.3g} TFLOP/s; "
          f"torch {torch.__version__}; "
          f"{args.rows} rows, {args.forward_tokens} padded tokens per forward", flush=True)
    rows = random_rows(args.rows)
    for shape in shapes:
        bench_hf(shape, rows, args, device, peak)
        if args.vllm:
            try:
                import vllm  # noqa: F401
            except ImportError:
                print(f"{shape:>14} vLLM   not installed here: skipped")
                continue
            bench_vllm(shape, rows, args, device, peak)
    return 0


if __name__ == "__main__":
    sys.exit(main())
