"""How the prompt embedding is pooled, against `neighbors` AUROC, on short and long prompts in one run.

    .venv/bin/python -m bench.pooling --benchmarks ../shared/benchmarks [--datasets fpb,fpb-long,arc,sample]
        [--limit 600]

One forward per row (prompt + response, the embedded default model, the scoring config's layers); from the same
hidden states the prompt embedding is pooled five ways: the mean over every prompt token (before
`prompt_tail_tokens`), the last prompt token alone, the mean over the last 32 and the last 64 prompt tokens, and
the average of the whole mean and the last-64 mean. `neighbors` (the dataset signal that reads the prompt
embedding most) is fitted on each and its AUROC for the bad rows printed; the response embedding is the same in all.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import datasets, metrics  # noqa: E402

VARIANTS = ("whole", "last token", "last 32", "last 64", "whole + last 64")


def pooled(backend, rows, layers, max_tokens: int, batch: int = 8) -> tuple[dict[str, np.ndarray], np.ndarray, list]:
    """({variant: (n, d) prompt embeddings}, (n, d) response embeddings, prompt lengths in tokens)."""
    import torch

    from clear_core.backends.ops import masked_mean, pad_left
    from clear_core.scoring import prepare_item

    out = {v: [] for v in VARIANTS}
    resp, lengths = [], []
    for b in range(0, len(rows), batch):
        items = [prepare_item(backend, r["prompt"], r["response"], max_tokens) for r in rows[b:b + batch]]
        with torch.inference_mode():
            ids, mask, pos = pad_left([it.ids for it in items], backend.pad_id)
            n, width = ids.shape
            _, _, hidden = backend._body(ids, mask, pos, layers=layers)
            h = torch.stack([hidden[layer].float() for layer in layers]).mean(0)
            col = torch.arange(width)[None, :]
            start = (width - torch.tensor([len(it.ids) for it in items]))[:, None]
            end = start + torch.tensor([it.response_start for it in items])[:, None]
            prompt = (col >= start) & (col < end)
            whole, tail64 = masked_mean(h, prompt), masked_mean(h, prompt & (col >= end - 64))
            out["whole"].append(whole)
            out["last token"].append(h[torch.arange(n), end[:, 0] - 1])
            out["last 32"].append(masked_mean(h, prompt & (col >= end - 32)))
            out["last 64"].append(tail64)
            out["whole + last 64"].append(0.5 * (whole + tail64))
            resp.append(masked_mean(h, col >= end))
        lengths += [it.response_start for it in items]
    return {k: torch.cat(v).numpy() for k, v in out.items()}, torch.cat(resp).numpy(), lengths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--benchmarks", required=True)
    ap.add_argument("--sample-dir", default=str(ROOT / "sample_data"))
    ap.add_argument("--datasets", default="fpb,fpb-long,arc,sample")
    ap.add_argument("--limit", type=int, default=600)
    args = ap.parse_args(argv)

    import torch

    from clear_core.backends import load_backend
    from clear_core.config import ScoreConfig
    from clear_core.signals import neighbors

    torch.set_num_threads(1)
    config = ScoreConfig()
    backend = load_backend("default")
    table = []
    for name in args.datasets.split(","):
        data = datasets.load(name.strip(), args.benchmarks, args.sample_dir, args.limit)
        t0 = time.perf_counter()
        emb, resp, lengths = pooled(backend, data.rows, config.embed_layers, config.max_tokens)
        responses = [r["response"] for r in data.rows]
        aurocs = [metrics.auroc(neighbors.compute(emb[v], resp, responses).values, data.is_bad) for v in VARIANTS]
        table.append((data.name, len(data.rows), int(np.median(lengths)), aurocs))
        print(f"# {data.name}: {len(data.rows)} rows in {time.perf_counter() - t0:.0f} s", flush=True)
    print("\n| dataset | rows | median prompt tokens | " + " | ".join(VARIANTS) + " |")
    print("|---|---:|---:|" + "---:|" * len(VARIANTS))
    for name, n, med, aurocs in table:
        print(f"| {name} | {n} | {med} | " + " | ".join(f"{a:.3f}" for a in aurocs) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
