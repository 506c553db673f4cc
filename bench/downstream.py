"""CLEAR's headline on RobustFT FPB (30 % noise): fine-tune on noisy vs auto-curated vs clean rows, then accuracy
on the clean test split.

    python -m bench.downstream --benchmarks ../shared/benchmarks [--limit 300] [--max-rows 100] [--epochs 2]
        [--seeds 0,1] [--test-limit N]

Steps: the first `--limit` rows of noisy30 are ingested into a workspace (in --work, outside the project) and
scored with the fast preset; the Auto-Filter keeps the rows at or above the median confidence (CLEAR's default),
and with --correct the confident Auto-Correct proposals of the rows below it are added as corrected rows. LoRA
fine-tunes (the same FinetuneConfig, the same number of rows, per seed) on (1) the noisy rows, (2) the curated rows,
(3) the clean labels of the same rows; each model and the untuned one answer the test questions, the answer letter
read from the next-token probabilities of the option letters. Everything is cached in --work (scores, tuned
models, accuracies), so an interrupted run goes on where it stopped. Writes bench/results/downstream.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import datasets, metrics  # noqa: E402


def ingest_rows(ws, name: str, rows: list[dict]):
    """Bench rows ({"id", "prompt", "response"}) as a workspace dataset (messages format); idempotent."""
    from clear_core.formats.spec import FormatSpec, ReadResult, Record

    records, digest = [], hashlib.sha256()
    for i, r in enumerate(rows):
        original = json.dumps({"id": r["id"], "messages": list(r["prompt"]) + [
            {"role": "assistant", "content": r["response"]}]}, ensure_ascii=False)
        digest.update(original.encode())
        records.append(Record(line=i + 1, row_id=str(r["id"]), prompt=tuple(r["prompt"]), response=r["response"],
                              original=original))
    spec = FormatSpec(file_type="jsonl", format="messages", mapping=None, columns=("id", "messages"))
    return ws.add_dataset(name, ReadResult(path=f"<bench:{name}>", spec=spec, records=records,
                                           sha256=digest.hexdigest()))


def scored_run(ws, info, config, backend, log=print) -> int:
    """A finished scoring run of the dataset with this config: the cached one, a resumed one, or a new one."""
    from clear_core import pipeline

    wanted = json.loads(config.to_json())
    for run in reversed(ws.list_runs(info.id)):
        if run.kind == "score" and run.config == wanted:
            if run.status != "done":
                log(f"  resuming scoring run {run.id}")
                pipeline.resume(ws, run.id, backend=backend, progress=_progress(log))
            return run.id
    log(f"  scoring {info.n_rows} rows of {info.name}")
    return pipeline.run_scoring(ws, info.id, config, backend=backend, progress=_progress(log))


def corrected_run(ws, info, score_run: int, config, thresholds, backend, log=print) -> int:
    """A finished correction run of `score_run` with this CorrectConfig: the cached one, a resumed one, or a new one."""
    from clear_core.correct import JUDGE_METHOD, resume, run_correction

    wanted = {**json.loads(config.to_json()), "score_run": score_run, "judge": JUDGE_METHOD}
    for run in reversed(ws.list_runs(info.id)):
        if run.kind == "correct" and all(run.config.get(k) == v for k, v in wanted.items()):
            if run.status != "done":
                log(f"  resuming correction run {run.id}")
                resume(ws, run.id, backend=backend, progress=_progress(log))
            return run.id
    log(f"  correcting the rows of {info.name} below t_keep = {thresholds.t_keep:.3f}")
    return run_correction(ws, info.id, config, score_run=score_run, thresholds=thresholds, backend=backend,
                          progress=_progress(log))


def _progress(log):
    last = [0.0]

    def report(p):
        if time.time() - last[0] > 30 or p.done == p.total:
            last[0] = time.time()
            eta = f", eta {p.eta_s:.0f} s" if p.eta_s else ""
            log(f"    {p.stage}: {p.done}/{p.total} ({p.rows_per_s:.2f} rows/s{eta})")
    return report


def test_rows(benchmarks, task: str, limit: int | None):
    """(prompts, gold letters, number of options) of the clean test split (the `gt` column is not read)."""
    df = pd.read_csv(Path(benchmarks) / "robustft" / task / "test.csv",
                     usecols=lambda c: c in ("question", "options", "answer"))
    if limit:
        df = df.iloc[:limit]
    prompts, gold, n_opts = [], [], []
    for q, o, a in zip(df["question"], df["options"], df["answer"]):
        opts = json.loads(o)
        prompts.append([{"role": "user", "content": datasets.option_prompt(q, opts)}])
        gold.append(str(a).strip().upper())
        n_opts.append(len(opts))
    return prompts, np.array(gold), n_opts


def accuracy(backend, prompts, gold, n_opts, batch: int = 16) -> float:
    """Share of test questions whose most probable option letter (next token) is the gold one."""
    letters = datasets.LETTERS[:max(n_opts)]
    pred = []
    for s in range(0, len(prompts), batch):
        probs = np.asarray(backend.next_token_probs(prompts[s:s + batch], list(letters)))
        for p, k in zip(probs, n_opts[s:s + batch]):
            pred.append(letters[int(np.argmax(p[:k]))])
    return float(np.mean(np.array(pred) == gold))


def curated(ws, info, run_id: int, rows: list[dict], correct: bool, backend, log=print):
    """(curated rows, kept row indices, corrected {row: text}): keep band at the median, + confident proposals."""
    from clear_core import filtering
    from clear_core.config import CorrectConfig

    thr = filtering.run_thresholds(ws, run_id)
    idx, conf = filtering.run_confidence(ws, run_id)
    kept = [int(i) for i, c in zip(idx, conf) if c >= thr.t_keep]
    fixes: dict[int, str] = {}
    if correct:
        cid = corrected_run(ws, info, run_id, CorrectConfig(max_new_tokens=8), thr, backend, log)
        props = ws.proposals(cid)
        fixes = {int(r): c for r, c, ok in zip(props["row_idx"], props["candidate"], props["confident"].fillna(False))
                 if ok}
    out = [(rows[i]["prompt"], rows[i]["response"]) for i in kept]
    out += [(rows[i]["prompt"], text) for i, text in sorted(fixes.items())]
    return out, kept, fixes, thr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", required=True)
    ap.add_argument("--task", default="fpb")
    ap.add_argument("--split", default="noisy30")
    ap.add_argument("--model", default="default")
    ap.add_argument("--limit", type=int, default=300, help="noisy training rows scored and curated")
    ap.add_argument("--max-rows", type=int, default=100, help="rows per fine-tune (the same for each condition)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seeds", default="0", help="comma list: each seed draws its own training sample and LoRA init")
    ap.add_argument("--test-limit", type=int, default=None, help="test questions (default: all)")
    ap.add_argument("--correct", action="store_true", help="add confident Auto-Correct proposals to the curated rows")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--work", default="/tmp/clear-bench/downstream", help="cache dir (workspace, tuned models)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "downstream.md"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from clear_core import finetune as ft
    from clear_core.backends import load_backend
    from clear_core.config import preset_config
    from clear_core.store import Workspace

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cache_file = work / "results.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: E731

    t_start = time.time()
    noisy = datasets.load_robustft(args.benchmarks, args.task, args.split, limit=args.limit)
    clean = datasets.load_robustft(args.benchmarks, args.task, "labeled", limit=args.limit)
    backend = load_backend(args.model)
    log(f"{noisy.name}: {len(noisy.rows)} rows, {int(noisy.is_bad.sum())} noisy; model {backend.name}")
    config = preset_config("fast", model=args.model, batch_size=16)
    with Workspace.open(work / "ws.duckdb") as ws:
        info = ingest_rows(ws, f"{args.task}-{args.split}-{args.limit}", noisy.rows)
        run_id = scored_run(ws, info, config, backend, log)
        _, conf = __import__("clear_core.filtering", fromlist=["x"]).run_confidence(ws, run_id)
        cur_rows, kept, fixes, thr = curated(ws, info, run_id, noisy.rows, args.correct, backend, log)
    detection = metrics.auroc(conf, noisy.is_bad)
    kept_noise = float(np.mean(noisy.is_bad[kept])) if kept else float("nan")
    clean_resp = [r["response"] for r in clean.rows]
    fixed_right = sum(fixes[i] == clean_resp[i] for i in fixes)
    log(f"confidence AUROC {detection:.3f}; kept {len(kept)} rows ({kept_noise:.1%} noisy, was "
        f"{noisy.is_bad.mean():.1%}); {len(fixes)} confident fixes, {fixed_right} equal the clean answer")

    train = {"noisy": [(r["prompt"], r["response"]) for r in noisy.rows],
             "curated": cur_rows,
             "clean": [(r["prompt"], r["response"]) for r in clean.rows]}
    prompts, gold, n_opts = test_rows(args.benchmarks, args.task, args.test_limit)
    seeds = [int(x) for x in args.seeds.split(",")]
    # A cached result is reused only for the same curation (scoring run), settings, seed and test set.
    base = f"{args.task}|{args.split}|{args.limit}|{args.max_rows}|{args.epochs}|{args.lr}|{args.correct}|run{run_id}"
    if f"untuned|{len(prompts)}" not in cache:
        cache[f"untuned|{len(prompts)}"] = {"acc": accuracy(backend, prompts, gold, n_opts), "rows": 0, "seconds": 0.0}
        cache_file.write_text(json.dumps(cache, indent=1))
    results = {"untuned": [cache[f"untuned|{len(prompts)}"]]}
    log(f"untuned: accuracy {results['untuned'][0]['acc']:.3f}")
    for seed in seeds:
        fcfg = ft.FinetuneConfig(lr=args.lr, epochs=args.epochs, max_rows=args.max_rows, batch_size=8, seed=seed)
        for name, rows in train.items():
            key = f"{name}|{base}|seed{seed}|{len(prompts)}"
            if key not in cache:
                out_dir = work / f"tuned-{name}-run{run_id}-seed{seed}"
                log(f"seed {seed}: fine-tuning on {name} rows ({min(len(rows), args.max_rows)} of {len(rows)})")
                res = ft.finetune(backend, rows, out_dir, fcfg)
                tuned = load_backend(str(out_dir))
                cache[key] = {"acc": accuracy(tuned, prompts, gold, n_opts), "rows": res.n_rows, "seed": seed,
                              "seconds": res.seconds, "loss_first": res.losses[0], "loss_last": res.losses[-1]}
                cache_file.write_text(json.dumps(cache, indent=1))
                del tuned
            results.setdefault(name, []).append(cache[key])
            log(f"seed {seed}: {name}: accuracy {cache[key]['acc']:.3f}")
    write_table(args, results, detection, len(kept), kept_noise, noisy, fixes, fixed_right, thr, len(prompts),
                time.time() - t_start, backend.name)
    return 0


def write_table(args, results, detection, n_kept, kept_noise, noisy, fixes, fixed_right, thr, n_test, seconds,
                model_name) -> None:
    """results: condition -> one dict per seed (untuned: one)."""
    mean = {name: float(np.mean([r["acc"] for r in runs])) for name, runs in results.items()}
    seeds = [r["seed"] for r in results["noisy"]]
    gap = mean["clean"] - mean["noisy"]
    closed = (mean["curated"] - mean["noisy"]) / gap if gap > 0 else float("nan")
    per_seed = [(r_n["acc"], r_c["acc"], r_k["acc"]) for r_n, r_c, r_k in
                zip(results["noisy"], results["curated"], results["clean"])]
    lines = [
        f"# Downstream: fine-tune on noisy vs auto-curated vs clean ({args.task} {args.split})", "",
        f"Model `{model_name}`; training pool: the first {len(noisy.rows)} rows of {args.split} "
        f"({noisy.is_bad.mean():.1%} noisy); LoRA r=16, lr={args.lr}, {args.epochs} epoch(s), {args.max_rows} rows "
        f"per fine-tune (a sample drawn per seed), seeds {', '.join(map(str, seeds))}; test: {n_test} questions of "
        f"test.csv; CPU, {args.threads} thread(s); {seconds / 60:.1f} min wall time for this invocation (steps "
        "found in --work are not redone).", "",
        f"Curation: confidence AUROC {detection:.3f} on the pool; Auto-Filter keeps {n_kept} rows at or above the "
        f"median ({thr.t_keep:.3f}), {kept_noise:.1%} of them noisy; "
        + (f"Auto-Correct: {len(fixes)} confident proposals, {fixed_right} equal to the clean answer."
           if args.correct else "Auto-Correct not used in this run (--correct adds it)."), "",
        "| training data | rows | test accuracy (mean over seeds) | per seed |", "|---|---:|---:|---|"]
    for name in ("untuned", "noisy", "curated", "clean"):
        runs = results[name]
        lines.append(f"| {name} | {runs[0]['rows']} | {mean[name]:.3f} | "
                     + " / ".join(f"{r['acc']:.3f}" for r in runs) + " |")
    lines += ["", (f"Share of the noisy-to-clean gap closed by curation (means): {closed:.2f}; per seed: "
                   + ", ".join(f"{(c - n) / (k - n):.2f}" if k > n else "n/a" for n, c, k in per_seed))
              if gap > 0 else "Clean did not beat noisy: no gap to close.",
              "", "Fine-tune loss (first step -> last step, per seed): " + "; ".join(
                  f"{n} " + ", ".join(f"{r['loss_first']:.3f} -> {r['loss_last']:.3f}" for r in results[n])
                  for n in ("noisy", "curated", "clean")), ""]
    metrics.write_markdown(args.out, lines)


if __name__ == "__main__":
    sys.exit(main())
