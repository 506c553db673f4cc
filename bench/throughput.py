"""Throughput of the fused scoring path, as ratios measured in one run (prints figures; not a test).

    .venv/bin/python -m bench.throughput [--rows 96] [--naive-rows 12] [--subset 6] [--threads N]
        [--dtypes float32,bfloat16]

For each dtype (the model loaded in it; `auto` picks bf16 on CPUs with native bf16, fp32 elsewhere):
1. peak: the machine's matmul FLOP/s in that dtype (torch.mm on large square matrices, best of a few), and fp32's;
2. the `fast` preset's tokens/s on sample_data/demo.jsonl through scoring.score_batch (the row signals and
   embeddings; the dataset-level neighbors step is not included), and its utilisation
   tokens/s x 2 x n_params / peak, next to the utilisation of the matmul FLOPs actually performed;
3. a naive baseline: one row at a time, likelihood from a full forward, and BSDetector's two questions answered by
   generating text (greedy, 8 new tokens by default, --naive-new-tokens) and parsing the letter;
4. rows/s of each preset (thorough on a small subset: it samples);
5. the levers: threads, and the padded-token budget per forward.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "sample_data" / "demo.jsonl"


def load_rows(path: Path, n: int) -> list[tuple[int, list[dict], str]]:
    """(row_idx, messages, response) from an Alpaca JSONL (instruction + input as the user turn)."""
    rows = []
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            rec = json.loads(line)
            user = rec["instruction"] + (f"\n\n{rec['input']}" if rec.get("input") else "")
            rows.append((i, [{"role": "user", "content": user}], rec["output"]))
            if len(rows) == n:
                break
    return rows


def matmul_peak(n: int = 2048, repeats: int = 5, dtype: str = "float32") -> tuple[float, float]:
    """Best-of-`repeats` FLOP/s of an n x n matmul in `dtype`: (per wall second, per CPU second of this process).

    The CPU-second figure is the one to trust on a shared machine: it counts only the time this process was given.
    """
    import torch

    dt = getattr(torch, dtype)
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    torch.mm(a, b)
    wall = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return 2 * n ** 3 / wall, 2 * n ** 3 / max(cpu, 1e-9)


def run_preset(backend, rows, config, repeats: int = 1) -> dict:
    """Score `rows` in chunks of config.batch_size rows (as the pipeline does), then, when the config has
    likelihood_ctx, its pass over the same rows (each after its nearest rows as worked examples); best of
    `repeats` timings."""
    from clear_core.scoring import score_batch, score_context
    from clear_core.signals import context

    best = None
    for _ in range(repeats):
        tokens, flops, t, c = 0, 0.0, time.perf_counter(), time.process_time()
        emb = []
        for lo in range(0, len(rows), config.batch_size):
            res = score_batch(backend, rows[lo:lo + config.batch_size], config)
            tokens, flops = tokens + res.n_tokens, flops + res.matmul_flops
            emb.append(res.prompt_emb)
            assert not res.errors, res.errors
        if context.NAME in config.signals:
            index = context.ContextIndex.build(np.arange(len(rows)), np.concatenate(emb))
            for lo in range(0, len(rows), config.batch_size):
                part = [(i, rows[i][1], rows[i][2]) for i in range(lo, min(lo + config.batch_size, len(rows)))]
                res = score_context(backend, part, [p[0] for p in part], index,
                                    lambda ids: {i: (rows[i][1], rows[i][2]) for i in ids}, config)
                tokens, flops = tokens + res.n_tokens, flops + res.matmul_flops
                assert not res.errors, res.errors
        elapsed, cpu = time.perf_counter() - t, time.process_time() - c
        if best is None or elapsed < best["s"]:
            best = dict(s=elapsed, cpu=cpu, tokens=tokens, flops=flops, rows_s=len(rows) / elapsed,
                        tok_s=tokens / elapsed, tok_cpu_s=tokens / cpu)
    return best


BSD_PROMPT = ("Question: {q}\nProposed Answer: {a}\n{question}\nThe output should strictly use the following template: "
              "explanation: [insert analysis], answer: [choose one letter from among choices A through C]")


def naive_row(backend, prompt, response, max_new_tokens: int = 8) -> tuple[float, float]:
    """One row the naive way: a full forward for the likelihood, then each question by generated, parsed text
    (greedy, at most max_new_tokens, stopping at the end of the turn)."""
    from clear_core.signals import reflection

    lp = backend.token_logprobs([prompt], [response])[0][:-1]
    scores = []
    for question in reflection.QUESTIONS:
        text = backend.generate([BSD_PROMPT.format(q=prompt[-1]["content"], a=response, question=question)],
                                max_new_tokens=max_new_tokens, temperature=0.0)[0][0]
        letter = re.search(r"\b([ABC])\b", text)
        scores.append({"A": 1.0, "B": 0.0, "C": 0.5}[letter.group(1)] if letter else 0.5)
    return float(np.exp(lp.mean())), float(np.mean(scores))


def measure_dtype(backend, rows, args, fp32_peak) -> None:
    """Peak in the backend's dtype, the fast preset's tokens/s and utilisation, and the naive loop, one dtype."""
    from clear_core.config import preset_config

    n_params = backend.n_params
    peak, peak_cpu = matmul_peak(dtype=backend.dtype)
    print(f"\n[{backend.dtype}] model {backend.name}: {n_params / 1e6:.1f}M params, {backend.device}; {backend.dtype} "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s wall, {peak_cpu / 1e9:.1f} per CPU second")
    fast = preset_config("fast", batch_size=args.rows_per_call)
    run_preset(backend, rows[:8], fast)  # warm-up (allocator, oneDNN kernels)
    res = run_preset(backend, rows, fast, repeats=2)
    again = matmul_peak(dtype=backend.dtype)  # re-measured after: the best seen bounds the machine
    peak, peak_cpu = max(peak, again[0]), max(peak_cpu, again[1])
    nominal = 2 * n_params
    print(f"fast ({args.rows_per_call} rows per score_batch call): {res['rows_s']:.2f} rows/s, {res['tok_s']:.0f} tokens/s "
          f"({res['tokens'] / len(rows):.0f} tokens/row incl. the two reflection suffixes; "
          f"{res['tok_cpu_s'] / args.threads:.0f} tokens per CPU second per thread)")
    print(f"  utilisation tokens/s x 2 x n_params / {backend.dtype} peak: wall {res['tok_s'] * nominal / peak:.2f}, "
          f"CPU-time {res['tok_cpu_s'] * nominal / peak_cpu:.2f}   (target >= 0.60)")
    print(f"  the same over the fp32 peak:                          wall {res['tok_s'] * nominal / fp32_peak[0]:.2f}, "
          f"CPU-time {res['tok_cpu_s'] * nominal / fp32_peak[1]:.2f}")
    print(f"  utilisation of the matmul FLOPs performed:     wall {res['flops'] / res['s'] / peak:.2f}, "
          f"CPU-time {res['flops'] / res['cpu'] / peak_cpu:.2f}   "
          f"({res['flops'] / res['tokens'] / 1e6:.0f} MFLOP/token performed vs 2 x n_params = {nominal / 1e6:.0f})")

    t, c = time.perf_counter(), time.process_time()
    for _, prompt, response in rows[:args.naive_rows]:
        naive_row(backend, prompt, response, args.naive_new_tokens)
    naive_wall, naive_cpu = args.naive_rows / (time.perf_counter() - t), args.naive_rows / (time.process_time() - c)
    fast_cpu = len(rows) / res["cpu"]
    print(f"naive (one row at a time, generated + parsed letters, at most {args.naive_new_tokens} new tokens per "
          f"question, same dtype): {naive_wall:.3f} rows/s; fast is "
          f"{res['rows_s'] / naive_wall:.1f}x faster per wall second, {fast_cpu / naive_cpu:.1f}x per CPU second "
          f"(target >= 10x)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=48)
    ap.add_argument("--rows-per-call", type=int, default=48, help="rows per score_batch call (the pipeline's batch)")
    ap.add_argument("--naive-rows", type=int, default=6)
    ap.add_argument("--naive-new-tokens", type=int, default=8,
                    help="new tokens the naive loop generates per question (8 reaches the letter SmolLM2 answers "
                         "first; BSDetector's template asks for an explanation, then the letter)")
    ap.add_argument("--subset", type=int, default=2, help="rows for balanced / thorough")
    ap.add_argument("--levers", action="store_true", help="also time threads / batch size / forward budget")
    ap.add_argument("--lever-rows", type=int, default=24)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--model", default="default")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma list of model dtypes to measure (or auto)")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as they are measured, also when piped

    import torch

    from clear_core.backends import load_backend
    from clear_core.config import preset_config

    torch.set_num_threads(args.threads)
    rows = load_rows(DEMO, args.rows)
    fp32_peak = matmul_peak()
    print(f"fp32 matmul peak (2048^3, best of 5): {fp32_peak[0] / 1e9:.1f} GFLOP/s per wall second, "
          f"{fp32_peak[1] / 1e9:.1f} GFLOP/s per CPU second of this process; {len(rows)} rows of {DEMO.name}, "
          f"torch threads {args.threads}")
    for dtype in args.dtypes.split(","):
        backend = load_backend(args.model, dtype=dtype.strip())
        measure_dtype(backend, rows, args, fp32_peak)

    sub = rows[:args.subset]  # the last dtype's backend
    print()
    fast = preset_config("fast", batch_size=args.rows_per_call)
    balanced = preset_config("balanced", batch_size=args.rows_per_call)
    a, b = run_preset(backend, rows, fast), run_preset(backend, rows, balanced)
    print(f"[{backend.dtype}] balanced (fast + the in-context pass, no sampling): {b['rows_s']:.2f} rows/s "
          f"({b['tokens'] / len(rows):.0f} tokens/row) against fast's {a['rows_s']:.2f} ({a['tokens'] / len(rows):.0f})")
    for name in ("thorough",) if sub else ():
        r = run_preset(backend, sub, preset_config(name, batch_size=args.rows_per_call))
        print(f"[{backend.dtype}] {name}: {r['rows_s']:.3f} rows/s on {len(sub)} rows (k = {preset_config(name).k_samples} samples/row)")

    if not args.levers:
        return
    lever_rows = rows[:args.lever_rows]
    print(f"levers (fast preset, {backend.dtype}, {len(lever_rows)} rows):")
    for threads, budget, batch in ((args.threads, 4096, 16), (args.threads, 4096, len(lever_rows)),
                                   (args.threads, 1024, len(lever_rows)), (1, 4096, len(lever_rows))):
        torch.set_num_threads(threads)
        cfg = preset_config("fast", forward_tokens=budget, batch_size=batch)
        r = run_preset(backend, lever_rows, cfg)
        p_wall, p_cpu = matmul_peak(dtype=backend.dtype)  # the peak at this thread count, measured right after
        print(f"  threads {threads}, forward_tokens {budget:5d}, rows/call {batch:3d}: {r['tok_s']:6.0f} tokens/s, "
              f"util wall {r['tok_s'] * 2 * backend.n_params / p_wall:.2f} / "
              f"CPU-time {r['tok_cpu_s'] * 2 * backend.n_params / p_cpu:.2f} "
              f"(peak {p_wall / 1e9:.0f} GFLOP/s), {r['flops'] / r['tokens'] / 1e6:.0f} MFLOP/token")
    torch.set_num_threads(args.threads)


if __name__ == "__main__":
    main()
