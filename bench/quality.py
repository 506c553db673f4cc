"""Detection quality of `confidence` against known noise, with baselines run in the same script.

    .venv/bin/python -m bench.quality --benchmarks ../shared/benchmarks [--limit N] [--datasets sample,fpb,arc]
        [--preset fast] [--context-examples 4] [--cache /tmp/clear_bench_cache]

For each dataset (the project's sample data; RobustFT fpb and arc noisy30) the rows are scored with the product's
own code (load_backend + scoring.score_batch and scoring.score_context, then the dataset signals and the
label-free calibration), and each method is reported as AUROC for detecting the bad rows, and precision / recall
when flagging as many rows as there are bad ones (@k) and when flagging the rows below the median. The rows are
always scored with likelihood, likelihood_min, likelihood_end and reflection (MEASURED) besides the preset's
signals, then with the in-context pass (likelihood_ctx, likelihood_ctx_min), and every dataset signal (neighbors,
form, likelihood_rel) is computed from the cached embeddings, so every one is reported; `confidence` is reported
with the geometric and the arithmetic mean, each with the preset's fixed weights, its label-free calibration and
a calibration over every measured signal. The sample also gets a table per noise kind. Row signals, embeddings and
in-context values are cached per dataset + model + dtype + row signals + layers (+ examples), chunk by chunk, so an
interrupted run goes on where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench import datasets, metrics

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 64


# Row signals always scored (and reported) beside the preset's own, so that each one is measured.
MEASURED = ("likelihood", "likelihood_min", "likelihood_end", "reflection")


def scoring_config(config):
    """The config the rows are scored with: the preset's row signals plus MEASURED (weights play no part in
    scoring; the dataset signals are computed afterwards from the cached embeddings)."""
    import dataclasses

    from clear_core.signals import of_kind

    signals = tuple(sorted((set(config.signals) | set(MEASURED)) & set(of_kind("row"))))
    return dataclasses.replace(config, signals=signals, weights={}, preset="measure")


def _key(data_name: str, rows: list[dict], config, dtype: str) -> str:
    text = json.dumps([[r["prompt"], r["response"]] for r in rows], ensure_ascii=False)
    # The row pass depends neither on the context pass's examples nor on how signals are combined.
    settings = {k: v for k, v in json.loads(scoring_config(config).to_json()).items()
                if k not in ("context_examples", "mean", "veto")}
    if not settings.get("prompt_tail_tokens"):  # 0 pools the whole prompt, as every row pass did before the field
        settings.pop("prompt_tail_tokens", None)
    digest = hashlib.sha256((text + json.dumps(settings, sort_keys=True) + dtype).encode()).hexdigest()[:12]
    return f"{data_name.replace('/', '_').replace(':', '_')}-{config.model}-{dtype}-{len(rows)}-{digest}"


def cached_chunks(n: int, cache: Path, label: str, compute) -> dict[str, np.ndarray]:
    """compute(start, stop) -> {name: array} over rows start..stop-1, CHUNK rows at a time, each chunk cached as
    it finishes (an interrupted run goes on where it stopped); the chunks' arrays concatenated."""
    cache.mkdir(parents=True, exist_ok=True)
    parts, t0, done = [], time.perf_counter(), 0
    for start in range(0, n, CHUNK):
        path = cache / f"chunk_{start:06d}.npz"
        if not path.exists():
            stop = min(start + CHUNK, n)
            np.savez(path.with_suffix(".tmp.npz"), **compute(start, stop))
            path.with_suffix(".tmp.npz").replace(path)
            done += stop - start
            rate = done / (time.perf_counter() - t0)
            print(f"  {label}: {stop}/{n} rows ({rate:.1f} rows/s)", file=sys.stderr, flush=True)
        with np.load(path) as z:
            parts.append({k: z[k] for k in z.files})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def score_cached(backend, rows: list[dict], config, cache: Path, label: str) -> dict[str, np.ndarray]:
    """Row signals (v_*, r_*) and embeddings of `rows` (score_batch in chunks, cached)."""
    from clear_core import scoring

    def compute(start, stop):
        res = scoring.score_batch(backend, [(i, rows[i]["prompt"], rows[i]["response"]) for i in range(start, stop)],
                                  scoring_config(config))
        arrays = {f"v_{k}": v for k, v in res.values.items()}
        arrays.update({f"r_{k}": v for k, v in res.raw.items()})
        return dict(prompt_emb=res.prompt_emb, response_emb=res.response_emb, **arrays)

    return cached_chunks(len(rows), cache, label, compute)


def context_cached(backend, rows: list[dict], source_rows, index, dataset_rows: list[dict], config, cache: Path,
                   label: str) -> dict[str, np.ndarray]:
    """likelihood_ctx (v_*, r_*) of `rows`, each after the worked examples of dataset row source_rows[i]."""
    from clear_core import scoring

    def lookup(ids):
        return {i: (dataset_rows[i]["prompt"], dataset_rows[i]["response"]) for i in ids}

    def compute(start, stop):
        res = scoring.score_context(backend, [(i, rows[i]["prompt"], rows[i]["response"]) for i in range(start, stop)],
                                    source_rows[start:stop], index, lookup, config)
        return {**{f"v_{k}": v for k, v in res.values.items()}, **{f"r_{k}": v for k, v in res.raw.items()}}

    return cached_chunks(len(rows), cache, label, compute)


def _tag(bad_rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps([[r["prompt"], r["response"]] for r in bad_rows]).encode()).hexdigest()[:10]


def _cached_split(bad_rows: list[dict], folder: Path) -> list[list[dict]]:
    """The synthetic rows as [all] or [a leading run of whole kinds already cached under `folder`, the rest]: a
    corruption kind added after the others leaves the rows before it as they were, and only the new ones are
    scored."""
    cuts = [i for i in range(len(bad_rows) - 1, 0, -1) if bad_rows[i]["kind"] != bad_rows[i - 1]["kind"]]
    if (folder / f"synthetic-{_tag(bad_rows)}").exists():
        return [bad_rows]
    for cut in cuts:
        if (folder / f"synthetic-{_tag(bad_rows[:cut])}").exists():
            return [bad_rows[:cut], bad_rows[cut:]]
    return [bad_rows]


def uses_context(config) -> bool:
    """Whether the preset combines the in-context signals (the in-context pass is needed for its `confidence`)."""
    from clear_core.signals import of_kind

    return bool(of_kind("context", config.signals))


def evaluate(name: str, data, backend, config, cache_root: Path, n_synthetic: int, in_context: bool = True):
    """(table rows, per-kind values or None): every method's metrics on one dataset. Without `in_context` the
    in-context pass (the costly one on long rows) is left out, and so are its two signals."""
    from clear_core import calibrate
    from clear_core.signals import combine, context, dataset, of_kind

    rows = data.rows
    key = _key(name, rows, config, backend.dtype)
    scored = score_cached(backend, rows, config, cache_root / key / "rows", name)
    values = {k[2:]: scored[k] for k in scored if k.startswith("v_")}
    index = context.ContextIndex.build(np.arange(len(rows)), scored["prompt_emb"])
    ctx_tag = f"context2-k{config.context_examples}"
    in_ctx = context_cached(backend, rows, np.arange(len(rows)), index, rows, config, cache_root / key / ctx_tag,
                            f"{name} in context") if in_context else {}
    values.update({k[2:]: in_ctx[k] for k in in_ctx if k.startswith("v_")})
    def as_rows(out: dict, part: list[dict]) -> dataset.Rows:
        return dataset.Rows(out["prompt_emb"], out["response_emb"], [r["prompt"] for r in part],
                            [r["response"] for r in part], {k[2:]: out[k] for k in out if k.startswith("r_")})

    fitted = dataset.fit(of_kind("dataset"), as_rows(scored, rows))
    values.update(fitted.values)
    fixed = {k: float(w) for k, w in config.weights.items() if k in values}

    def score_part(part: list[dict]) -> tuple[dict, dict]:
        tag = _tag(part)
        out = score_cached(backend, part, config, cache_root / key / f"synthetic-{tag}", f"{name} synthetic")
        syn = context_cached(backend, part, np.array([r["source_row"] for r in part]), index, rows, config,
                             cache_root / key / f"synthetic-{tag}-{ctx_tag}", f"{name} synthetic in context") \
            if in_context else {}
        return out, syn

    def score_rows(bad_rows: list[dict]) -> dict[str, np.ndarray]:
        parts = [score_part(p) for p in _cached_split(bad_rows, cache_root / key)]
        out, syn = ({k: np.concatenate([p[i][k] for p in parts]) for k in parts[0][i]} for i in (0, 1))
        res = {k[2:]: out[k] for k in out if k.startswith("v_")}
        src = np.array([r["source_row"] for r in bad_rows])
        res.update({k[2:]: syn[k] for k in syn if k.startswith("v_")})
        res.update(dataset.score_queries(fitted, as_rows(out, bad_rows), src))
        return res

    used = {k: v for k, v in values.items() if k in fixed}
    n_syn = min(n_synthetic, len(rows))
    y = data.is_bad
    results, cals = [], {}
    for mean in ("geometric", "arithmetic"):  # the product's default first
        cal = calibrate.label_free(rows, used, score_rows, n=n_syn, seed=config.seed,
                                   labels_only=fitted.labels_only, mean=mean, veto=config.veto)
        # Every measured signal (preset or not) in one label-free calibration: what it makes of them all.
        cal_all = calibrate.label_free(rows, values, score_rows, n=n_syn, seed=config.seed,
                                       labels_only=fitted.labels_only, mean=mean, veto=config.veto)
        cals[mean] = (cal, cal_all)
        results += [
            (f"confidence, {mean} mean (preset weights)", metrics.report(combine.confidence(values, fixed, mean, config.veto), y)),
            (f"confidence, {mean} mean (label-free calibrated)",
             metrics.report(combine.confidence(values, cal.weights, mean, config.veto), y)),
            (f"confidence, {mean} mean (label-free calibrated, all signals)",
             metrics.report(combine.confidence(values, cal_all.weights, mean, config.veto), y)),
        ]
    rng = np.random.default_rng(0)
    for sig, v in values.items():
        ok = ~np.isnan(v)
        results.append((f"signal: {sig}", metrics.report(np.where(ok, v, np.nanmean(v)), y)))
    results.append(("baseline: random", metrics.report(rng.random(len(y)), y)))
    results.append(("baseline: likelihood only", metrics.report(values["likelihood"], y)))
    cal, cal_all = cals[config.mean]
    info = {"n": len(y), "bad": int(y.sum()), "categorical_rows": int(fitted.labels_only.sum()), "mean": config.mean,
            "calibrated_weights": {k: round(w, 3) for k, w in cal.weights.items()},
            "synthetic_auroc": {k: round(a, 3) for k, a in cal_all.auroc.items()}, "synthetic_kinds": cal.kinds,
            "calibrated_weights_all_signals": {k: round(w, 3) for k, w in cal_all.weights.items()}}
    print(f"# {name}: " + json.dumps(info), flush=True)
    per_kind = None
    if "noise" in data.info:
        per_kind = ({"confidence": combine.confidence(values, cal.weights, config.mean, config.veto), **values},
                    np.asarray(data.info["noise"]))
    return results, per_kind


def print_per_kind(name: str, values: dict[str, np.ndarray], noise: np.ndarray) -> None:
    """AUROC of each signal for each kind of noise: that kind's bad rows against all clean rows."""
    kinds = sorted(set(noise) - {"clean"})
    clean = noise == "clean"
    print(f"\n## {name}: AUROC per noise kind (its bad rows against all clean rows)")
    print("| signal | " + " | ".join(f"{k} ({int((noise == k).sum())})" for k in kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for sig, v in values.items():
        v = np.where(np.isnan(v), np.nanmean(v), v)
        cells = [metrics.report(v[clean | (noise == k)], (noise == k)[clean | (noise == k)])["auroc"] for k in kinds]
        print(f"| {sig} | " + " | ".join(f"{c:.2f}" for c in cells) + " |", flush=True)


def print_table(name: str, results: list[tuple[str, dict]]) -> None:
    print(f"\n## {name}")
    print("| method | AUROC | P@k | R@k | P@median | R@median |\n|---|---|---|---|---|---|")
    for method, r in results:
        print(f"| {method} | {r['auroc']:.3f} | {r['p_at_k']:.3f} | {r['r_at_k']:.3f} | "
              f"{r['p_median']:.3f} | {r['r_median']:.3f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--benchmarks", required=True, help="the shared benchmarks folder (holds robustft/)")
    ap.add_argument("--sample-dir", default=str(ROOT / "sample_data"))
    ap.add_argument("--datasets", default="sample,fpb,arc", help="comma list: sample, fpb, arc, fpb:noisy50, ...")
    ap.add_argument("--limit", type=int, default=None, help="first N rows of each dataset")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--model", default="default")
    ap.add_argument("--embed-layers", default=None, help="comma list of hidden-state layers pooled into embeddings")
    ap.add_argument("--synthetic", type=int, default=200, help="rows sampled for label-free calibration")
    ap.add_argument("--context-examples", type=int, default=None, help="worked examples per row for likelihood_ctx")
    ap.add_argument("--cache", default="/tmp/clear_bench_cache")
    ap.add_argument("--prompt-tail-tokens", type=int, default=None,
                    help="prompt tokens pooled into the prompt embedding (0 = the whole prompt; default: the config's)")
    ap.add_argument("--no-in-context", action="store_true",
                    help="leave out the in-context pass (and its two signals) when the preset does not use it")
    args = ap.parse_args(argv)

    from clear_core.backends import load_backend
    from clear_core.config import preset_config

    overrides = {"model": args.model}
    if args.context_examples is not None:
        overrides["context_examples"] = args.context_examples
    if args.prompt_tail_tokens is not None:
        overrides["prompt_tail_tokens"] = args.prompt_tail_tokens
    if args.embed_layers:
        overrides["embed_layers"] = tuple(int(x) for x in args.embed_layers.split(","))
    config = preset_config(args.preset, **overrides)
    backend = load_backend(args.model)
    print(f"model {backend.name} ({backend.n_params / 1e6:.0f}M params, {backend.device}, {backend.dtype}); preset {args.preset}; "
          f"embed_layers {config.embed_layers}", flush=True)
    in_context = not args.no_in_context or uses_context(config)
    for name in args.datasets.split(","):
        data = datasets.load(name.strip(), args.benchmarks, args.sample_dir, args.limit)
        results, per_kind = evaluate(data.name, data, backend, config, Path(args.cache) / "quality", args.synthetic,
                                     in_context=in_context)
        print_table(data.name, results)
        if per_kind is not None:
            print_per_kind(data.name, *per_kind)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
