"""Correction quality: how many noisy rows Auto-Correct restores, how many clean rows it wrongly changes, and
detection precision / recall next to RobustFT's rule, all with the same model in the same run.

    python -m bench.correction --benchmarks ../shared/benchmarks [--limit 100] [--datasets sample,fpb,arc]

Per dataset (the first --limit rows): score (fast preset), Auto-Filter at the median, Auto-Correct (eta = 0.8)
on the rows below it. Reported:
* restored: share of the noisy rows whose confident proposal equals the clean answer;
* wrongly changed: share of the clean rows that got a confident proposal (proposals always differ from the row's
  answer; the target is < 2 %);
* confident fixes by source, and what each judge (LLM, dataset) alone would have made confident;
* detection precision / recall of "confidence < t_keep" against the noise labels;
* RobustFT's rule (a row is clean only when the model's plain answer and its chain-of-thought answer both equal
  the given label; multiple-choice data only), as precision / recall of the rows it calls noisy.
Scores, proposals and RobustFT's rule are cached in --work (outside the project), so a second invocation only adds
what is new.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import datasets, metrics  # noqa: E402
from bench.downstream import corrected_run, ingest_rows, scored_run  # noqa: E402

COT_SUFFIX = "\nThink step by step, then end with \"Answer: <letter>\"."


def clean_answers(name: str, data, benchmarks, sample_dir, limit) -> list[str | None]:
    """The clean response of each row (None where unknown): labeled.csv for RobustFT; for the sample data, a
    clean-text column of demo_labels.csv when it has one."""
    if name in ("fpb", "arc"):
        return [r["response"] for r in datasets.load_robustft(benchmarks, name, "labeled", limit=limit).rows]
    if name == "real_noise":
        from bench import real_noise

        return [r["output"] for r in real_noise.load_clean(benchmarks, limit)]
    labels = pd.read_csv(Path(sample_dir) / "demo_labels.csv", dtype=str)
    col = next((c for c in ("clean_response", "clean", "clean_output") if c in labels.columns), None)
    if col is None:
        return [None] * len(data.rows)
    clean = dict(zip(labels["id"], labels[col]))
    return [clean.get(r["id"]) if bad else r["response"] for r, bad in zip(data.rows, data.is_bad)]


def robustft_rule(backend, data, batch: int = 8, max_new_tokens: int = 64, log=print) -> np.ndarray:
    """True where RobustFT's detector calls the row noisy: the plain answer or the chain-of-thought answer
    differs from the given letter."""
    letters_given = data.info["letters"]
    n_opts = [len(o) for o in data.info["options"]]
    letters = datasets.LETTERS[:max(n_opts)]
    noisy = np.zeros(len(data.rows), dtype=bool)
    for s in range(0, len(data.rows), batch):
        rows = data.rows[s:s + batch]
        probs = np.asarray(backend.next_token_probs([r["prompt"] for r in rows], list(letters)))
        plain = [letters[int(np.argmax(p[:k]))] for p, k in zip(probs, n_opts[s:s + batch])]
        cot_prompts = [[{"role": "user", "content": r["prompt"][-1]["content"] + COT_SUFFIX}] for r in rows]
        cot = [_letter(g[0], letters[:k]) for g, k in
               zip(backend.generate(cot_prompts, max_new_tokens=max_new_tokens), n_opts[s:s + batch])]
        for j, (p, c) in enumerate(zip(plain, cot)):
            noisy[s + j] = not (p == letters_given[s + j] and c == letters_given[s + j])
        if (s // batch) % 5 == 0:
            log(f"    robustft rule: {s + len(rows)}/{len(data.rows)}")
    return noisy


def _letter(text: str, letters: str) -> str | None:
    """The answer letter of a chain-of-thought: the last 'Answer: X', else the last standalone option letter."""
    found = re.findall(r"[Aa]nswer\s*(?:is)?\s*:?\s*\(?([A-J])\b", text)
    if not found:
        found = re.findall(r"\b([A-J])\b", text)
    found = [f for f in found if f in letters]
    return found[-1] if found else None


def seed_cache(name: str, data, cache_root: Path, log=print) -> dict:
    """(prompt, response) -> cached row-pass arrays from bench/quality.py's cache for this dataset (its rows and
    its label-free calibration's synthetic rows), so that scoring here reuses them: same model, fp32, same signals
    (the fast preset's row signals are quality.MEASURED). Nothing is written into the cache."""
    import glob

    from bench import quality
    from clear_core import calibrate
    from clear_core.config import preset_config

    config = preset_config("fast", model="default")
    key_dir = cache_root / quality._key(data.name, data.rows, config, "float32")
    out: dict = {}

    def load(rows, folder: Path) -> None:
        paths = sorted(glob.glob(str(folder / "chunk_*.npz")))
        if not paths or len(paths) * quality.CHUNK < len(rows):
            return
        parts = [np.load(p_) for p_ in paths]
        arrays = {k: np.concatenate([z[k] for z in parts]) for k in parts[0].files}
        for i, r in enumerate(rows):
            out[_content_key(r["prompt"], r["response"])] = {k: v[i] for k, v in arrays.items()}

    load(data.rows, key_dir / "rows")
    if not out:
        log(f"  no cached row pass for {name} in {key_dir}")
        return out
    # The synthetic rows of the quality bench's calibration: made again to know their texts.
    pe = np.stack([out[_content_key(r["prompt"], r["response"])]["prompt_emb"] for r in data.rows])
    re_ = np.stack([out[_content_key(r["prompt"], r["response"])]["response_emb"] for r in data.rows])
    from clear_core.signals import neighbors

    labels_only = neighbors.fit(pe, re_, [r["response"] for r in data.rows])[0].labels >= 0
    bad = calibrate.make_corruptions(data.rows, n=min(200, len(data.rows)), seed=0, labels_only=labels_only)
    tag = hashlib.sha256(json.dumps([[r["prompt"], r["response"]] for r in bad]).encode()).hexdigest()[:10]
    load(bad, key_dir / f"synthetic-{tag}")
    log(f"  {len(out)} cached row passes for {name} ({key_dir.name})")
    return out


def _content_key(prompt, response) -> str:
    return json.dumps([list(prompt), response], ensure_ascii=False)


def cached_score_batch(real, cache: dict):
    """scoring.score_batch answering the cached rows from `cache` and the others with `real`."""
    from clear_core import scoring
    from clear_core.signals import of_kind

    def score_batch(backend, rows, config):
        rows = [r if isinstance(r, scoring.Row) else scoring.Row(*r) for r in rows]
        names = of_kind("row", config.signals)
        hit = [cache.get(_content_key(r.prompt, r.response)) for r in rows]
        hit = [h if h is not None and all(f"v_{n}" in h for n in names) and config.k_samples == 0 else None
               for h in hit]
        miss = [i for i, h in enumerate(hit) if h is None]
        fresh = real(backend, [rows[i] for i in miss], config) if miss else None
        n = len(rows)
        dim = len(next(h for h in hit if h is not None)["prompt_emb"]) if len(miss) < n else fresh.prompt_emb.shape[1]
        values = {k: np.full(n, np.nan) for k in names}
        raw = {k: np.full(n, np.nan) for k in names}
        pe, re_ = np.full((n, dim), np.nan, np.float32), np.full((n, dim), np.nan, np.float32)
        errors = {}
        for i, h in enumerate(hit):
            if h is not None:
                for k in names:
                    values[k][i], raw[k][i] = h[f"v_{k}"], h[f"r_{k}"]
                pe[i], re_[i] = h["prompt_emb"], h["response_emb"]
        for j, i in enumerate(miss):
            for k in names:
                values[k][i], raw[k][i] = fresh.values[k][j], fresh.raw[k][j]
            pe[i], re_[i] = fresh.prompt_emb[j], fresh.response_emb[j]
        if fresh is not None:
            errors = dict(fresh.errors)
        return scoring.BatchResult(row_idx=np.array([r.row_idx for r in rows], dtype=np.int64), values=values,
                                   raw=raw, prompt_emb=pe, response_emb=re_,
                                   n_tokens=fresh.n_tokens if fresh else 0, errors=errors)

    return score_batch


def evaluate(name, data, clean, ws, backend, args, log) -> dict:
    from clear_core import filtering
    from clear_core.config import CorrectConfig, preset_config
    from clear_core.correct.judging import STORED_SIGNALS
    from clear_core.correct import same_answer

    info = ingest_rows(ws, f"{name}-{len(data.rows)}", data.rows)
    run_id = scored_run(ws, info, preset_config("fast", model=args.model, batch_size=16), backend, log)
    thr = filtering.run_thresholds(ws, run_id, eta=args.eta)
    idx, conf = filtering.run_confidence(ws, run_id)
    cid = corrected_run(ws, info, run_id, CorrectConfig(eta=args.eta, max_new_tokens=args.max_new_tokens), thr,
                        backend, log)
    props = ws.proposals(cid)
    parts = ws.scores_wide(cid)
    for col in STORED_SIGNALS:
        if col not in parts.columns:
            parts[col] = np.nan
    props = props.merge(parts[["row_idx", *STORED_SIGNALS]], on="row_idx", how="left")
    bad_of = dict(zip(idx.tolist(), data.is_bad[idx].tolist()))
    bad = data.is_bad[idx]
    known = np.array([clean[i] is not None for i in idx])
    n_noisy_known = int((bad & known).sum())
    n_clean = int((~bad).sum())

    def outcome(mask) -> dict:
        """Restored / wrongly changed / fixes by source when the proposals where `mask` holds are the confident ones."""
        sel = props[np.asarray(mask, dtype=bool)]
        right = [clean[int(r)] is not None and same_answer(c, clean[int(r)]) for r, c in zip(sel["row_idx"], sel["candidate"])]
        noisy = [bool(bad_of[int(r)]) for r in sel["row_idx"]]
        by_source = {}
        for s_, ok, nz in zip(sel["source"], right, noisy):
            d = by_source.setdefault(s_, {"fixes": 0, "right": 0, "on_clean": 0})
            d["fixes"] += 1
            d["right"] += int(ok and nz)
            d["on_clean"] += int(not nz)
        return {"confident": len(sel),
                "restored": sum(ok and nz for ok, nz in zip(right, noisy)) / max(1, n_noisy_known) if known.any() else None,
                "wrongly_changed": sum(not nz for nz in noisy) / max(1, n_clean),
                "clean_changed_rows": sum(not nz for nz in noisy),
                "sources": by_source}

    eta = args.eta
    pooled = outcome(props["confident"].fillna(False))
    llm_only = outcome(props["judge_llm"].fillna(0) >= eta)
    data_only = outcome(props["judge_dataset"].fillna(0) >= eta)
    # Candidates that equal the clean answer, whatever the judges say (what a perfect judge could restore).
    cand_right = [clean[int(r)] is not None and bool(bad_of[int(r)]) and same_answer(c, clean[int(r)])
                  for r, c in zip(props["row_idx"], props["candidate"])]
    run = ws.get_run(cid)
    out_extra = {"rule": run.config.get("acceptance"), "relabel_curve": relabel_curve(ws, run, props, clean, bad_of,
                                                                                     n_noisy_known, n_clean, backend)}
    if "noise" in data.info:
        out_extra["per_kind"] = per_kind(props, clean, np.asarray(data.info["noise"]), idx)
    flagged = conf < thr.t_keep
    p, r = metrics.precision_recall_below(conf, bad, thr.t_keep)
    out = {"rows": len(idx), "noisy": int(bad.sum()), "clean": n_clean, "auroc": metrics.auroc(conf, bad),
           "flagged": int(flagged.sum()), "precision": p, "recall": r, "proposals": len(props),
           "proposals_right": int(sum(cand_right)),
           "with_dataset_judge": int(props["judge_dataset"].notna().sum()),
           **pooled, "llm_only": llm_only, "dataset_only": data_only,
           "scorer_only": outcome(props["judge_scorer"].fillna(0) >= eta), **out_extra}
    if name in ("fpb", "arc") and not args.no_robustft:
        cache = Path(args.work) / f"robustft-{name}-{len(data.rows)}-{args.cot_tokens}.npy"
        if cache.exists():
            rule_all = np.load(cache)
        else:
            rule_all = robustft_rule(backend, data, max_new_tokens=args.cot_tokens, log=log)
            np.save(cache, rule_all)
        rule = rule_all[idx]
        tp = int((rule & bad).sum())
        out["robustft_flagged"] = int(rule.sum())
        out["robustft_precision"] = tp / max(1, int(rule.sum()))
        out["robustft_recall"] = tp / max(1, int(bad.sum()))
    return out


def judge_only(name, data, clean, ws, backend, args, log) -> dict:
    """The judges without generation (what fits a busy machine): score the rows (cached), then
    (1) the relabel rule's classifier side over RELABEL_GRID on the rows below t_keep, the LLM judge not asked
        (no opinion: its veto could only take relabels away);
    (2) the scorer judge (`correct.scorer`) of the clean answer in place of each noisy row's response below t_keep
        (would the right fix be confident?) and, as the control, of another kept row's response in place of each
        clean row's (would a wrong change be?), with the acceptance threshold at eta; per noise kind."""
    from clear_core import filtering
    from clear_core.config import CorrectConfig, preset_config
    from clear_core.correct import run as correct_run, same_answer

    info = ingest_rows(ws, f"{name}-{len(data.rows)}", data.rows)
    run_id = scored_run(ws, info, preset_config("fast", model=args.model, batch_size=16), backend, log)
    thr = filtering.run_thresholds(ws, run_id, eta=args.eta)
    targets = correct_run.target_rows(ws, run_id, thr.t_keep)
    settings = {**json.loads(CorrectConfig().to_json()), "score_run": run_id, "t_keep": thr.t_keep}
    fake = type("Run", (), {"id": -1, "n_total": len(targets), "dataset_id": info.id, "config": settings})
    ctx = correct_run._Context.build(ws, fake, settings, CorrectConfig(), backend, None)
    bad = data.is_bad
    n_noisy, n_clean = int(bad.sum()), int((~bad).sum())
    curve = []
    for t in RELABEL_GRID:
        restored = changed = 0
        for r in targets:
            p = ctx.pos_of[int(r)]
            if ctx.neighbors_model.labels[p] < 0:
                continue
            cand, pb, ratio = ctx.relabels.pick(p, ctx.responses[p])
            if cand is None or ratio <= 0.5 or not ctx.relabels.sure(cand, pb, ratio, t):
                continue
            if bad[int(r)]:
                restored += int(clean[int(r)] is not None and same_answer(cand, clean[int(r)]))
            else:
                changed += 1
        curve.append({"threshold": t, "restored": restored / max(1, n_noisy), "clean_changed": changed / max(1, n_clean),
                      "clean_changed_rows": changed, "relabelled": restored + changed})
    out = {"rows": len(data.rows), "noisy": n_noisy, "clean": n_clean, "targets": len(targets),
           "noisy_targets": int(bad[targets].sum()), "relabel_curve_no_llm": curve}
    if ctx.scorer is not None and not (ctx.neighbors_model.labels >= 0).all():
        noise = np.asarray(data.info.get("noise", np.where(bad, "noisy", "clean")))
        rng = np.random.default_rng(0)
        pool = ctx.pool
        picked = [int(r) for r in targets if (clean[int(r)] is not None and not same_answer(clean[int(r)],
                                                                                               ctx.responses[ctx.pos_of[int(r)]]))
                  or not bad[int(r)]]
        per = {}
        for s_ in range(0, len(picked), 16):
            part = picked[s_:s_ + 16]
            pos = [ctx.pos_of[r] for r in part]
            cands = [clean[r] if bad[r] else ctx.responses[int(pool[rng.integers(len(pool))])] for r in part]
            j = ctx.scorer.judge(backend, [ctx.prompts[p] for p in pos], [ctx.responses[p] for p in pos], cands, pos)
            for r, v in zip(part, j):
                d = per.setdefault(str(noise[r]), {"rows": 0, "confident": 0})
                d["rows"] += 1
                d["confident"] += int(v >= args.eta)
            log(f"    scorer judge: {s_ + len(part)}/{len(picked)}")
        out["scorer_per_kind"] = per
    return out


RELABEL_GRID = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.01)


def relabel_curve(ws, run, props, clean, bad_of, n_noisy, n_clean, backend) -> list[dict]:
    """Restored / clean changed over the relabel threshold (RELABEL_GRID), from the stored components: at each
    threshold a row is relabelled when the classifier is sure at it and the LLM judge (relabel_llm) does not veto;
    the other rows keep their stored proposal when it is confident and not a relabel. (At a stricter threshold than
    the run's, a row whose relabel is undone would have had its next-best candidate stored instead: not counted.)"""
    from clear_core.config import CorrectConfig
    from clear_core.correct import same_answer
    from clear_core.correct.relabel import llm_allows
    from clear_core.correct.run import _Context

    settings = run.config
    config = CorrectConfig(**{k: settings[k] for k in json.loads(CorrectConfig().to_json()) if k in settings})
    ctx = _Context.build(ws, run, settings, dataclasses.replace(config, scorer=False), backend, None)
    by_row = props.set_index("row_idx")
    picks = {}
    for r in ctx.targets:
        p = ctx.pos_of[int(r)]
        if ctx.neighbors_model.labels[p] >= 0:
            cand, pb, ratio = ctx.relabels.pick(p, ctx.responses[p])
            if cand is not None and ratio > 0.5:
                picks[int(r)] = (cand, pb, ratio)
    out = []
    for t in RELABEL_GRID + (float(config.relabel_threshold),):
        restored = changed = relabelled = 0
        for r in ctx.targets:
            r = int(r)
            cand = None
            if r in picks and ctx.relabels.sure(picks[r][0], picks[r][1], picks[r][2], t):
                llm = by_row["relabel_llm"].get(r, np.nan) if "relabel_llm" in by_row else np.nan
                if bool(llm_allows([llm], config.relabel_llm_veto)[0]):
                    cand = picks[r][0]
                    relabelled += 1
            if cand is None and r in by_row.index and bool(by_row.loc[r, "confident"]) \
                    and by_row.loc[r, "source"] != "relabel":
                cand = by_row.loc[r, "candidate"]
            if cand is None:
                continue
            if bad_of[r]:
                restored += int(clean[r] is not None and same_answer(cand, clean[r]))
            else:
                changed += 1
        out.append({"threshold": t, "relabelled": relabelled, "restored": restored / max(1, n_noisy),
                    "clean_changed": changed / max(1, n_clean), "clean_changed_rows": changed})
    return out


def per_kind(props, clean, noise, idx) -> dict:
    """Per noise kind: rows, confident fixes that restore the clean answer, other confident fixes, left for review."""
    from clear_core.correct import same_answer

    conf = props[props["confident"].fillna(False).astype(bool)].set_index("row_idx")["candidate"]
    out = {}
    for r in idx:
        kind = str(noise[int(r)])
        d = out.setdefault(kind, {"rows": 0, "restored": 0, "other_fix": 0, "review": 0})
        d["rows"] += 1
        if int(r) in conf.index:
            right = clean[int(r)] is not None and same_answer(conf[int(r)], clean[int(r)])
            d["restored" if right and kind != "clean" else "other_fix"] += 1
        else:
            d["review"] += 1
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", required=True)
    ap.add_argument("--sample-dir", default=str(ROOT / "sample_data"))
    ap.add_argument("--datasets", default="sample,fpb,arc")
    ap.add_argument("--limit", type=int, default=100, help="first N rows of each dataset (0: all)")
    ap.add_argument("--limits", default="", help="per-dataset overrides of --limit, e.g. fpb=0,arc=400")
    ap.add_argument("--model", default="default")
    ap.add_argument("--eta", type=float, default=0.8)
    ap.add_argument("--max-new-tokens", type=int, default=16, help="in-context candidate length")
    ap.add_argument("--cot-tokens", type=int, default=64, help="chain-of-thought length for RobustFT's rule")
    ap.add_argument("--no-robustft", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="/tmp/clear-bench/correction")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "correction.md"))
    ap.add_argument("--judge-only", action="store_true",
                    help="no generation: the relabel rule's classifier side and the scorer judge on clean answers")
    ap.add_argument("--cache", default="/tmp/clear_bench_cache",
                    help="bench/quality.py's cache: cached row passes are reused (read only); '' to score afresh")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from clear_core.backends import load_backend
    from clear_core.store import Workspace

    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: E731
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    backend = load_backend(args.model, dtype="float32")  # the quality cache's dtype
    from clear_core import scoring

    real_score_batch, cache = scoring.score_batch, {}
    limits = {k.strip(): int(v) for k, v in (x.split("=") for x in args.limits.split(",") if x.strip())}
    results = {}
    with Workspace.open(work / "ws.duckdb") as ws:
        for name in args.datasets.split(","):
            if name == "sample" and not (Path(args.sample_dir) / "demo.jsonl").exists():
                log("sample data not generated: skipped")
                continue
            limit = limits.get(name, args.limit) or None
            if name == "real_noise":
                from bench import real_noise

                data = real_noise.make(real_noise.load_clean(args.benchmarks, limit))
            else:
                data = datasets.load(name, args.benchmarks, args.sample_dir, limit=limit)
            if args.cache:
                cache = seed_cache(name, data, Path(args.cache) / "quality", log)
                scoring.score_batch = cached_score_batch(real_score_batch, cache)
            clean = clean_answers(name, data, args.benchmarks, args.sample_dir, limit)
            log(f"{name}: {len(data.rows)} rows, {int(data.is_bad.sum())} noisy")
            t0 = time.time()
            results[name] = (judge_only if args.judge_only else evaluate)(name, data, clean, ws, backend, args, log)
            results[name]["seconds"] = time.time() - t0
            log(f"{name}: {json.dumps(results[name])}")
            (write_judge_only if args.judge_only else write_table)(args, results, backend.name)  # a cut-short run
            #                                                                             keeps its table
    return 0


def write_judge_only(args, results, model_name) -> None:
    lines = [f"# Correction judges without generation (model `{model_name}`, eta = {args.eta})", "",
             "Relabel rule, classifier side (LLM judge not asked), rows below t_keep:", "",
             "| dataset | threshold | relabelled | restored (of noisy) | clean changed |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        for c in r["relabel_curve_no_llm"]:
            lines.append(f"| {name} | {c['threshold']:.2f} | {c['relabelled']} | {_pct(c['restored'])} | "
                         f"{_pct(c['clean_changed'])} ({c['clean_changed_rows']} of {r['clean']}) |")
    lines += ["", "Scorer judge >= eta: the clean answer in place of a noisy row's response (per kind), another kept "
              "row's response in place of a clean row's (clean):", "", "| dataset | kind | rows | confident |",
              "|---|---|---:|---:|"]
    for name, r in results.items():
        for kind, d in sorted((r.get("scorer_per_kind") or {}).items()):
            lines.append(f"| {name} | {kind} | {d['rows']} | {d['confident']} |")
    lines.append("")
    metrics.write_markdown(args.out, lines)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def write_table(args, results, model_name) -> None:
    lines = [f"# Correction quality (model `{model_name}`, eta = {args.eta}; the first `rows` rows of each dataset)", "",
             "Judge: the LLM's two-order pairwise verdict pooled in log-odds with the dataset judge (out-of-fold "
             "classifier, P(candidate) / (P(candidate) + P(original)), categorical rows only).", "",
             "| dataset | rows | noisy | AUROC | flagged | ours P / R | RobustFT rule P / R | proposals (= clean answer) | "
             "confident fixes | restored (of noisy) | clean rows wrongly changed |",
             "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        rule = (f"{_pct(r['robustft_precision'])} / {_pct(r['robustft_recall'])} ({r['robustft_flagged']} flagged)"
                if "robustft_precision" in r else ("n/a (free text)" if name == "sample" else "not run"))
        lines.append(f"| {name} | {r['rows']} | {r['noisy']} | {r['auroc']:.3f} | {r['flagged']} | "
                     f"{_pct(r['precision'])} / {_pct(r['recall'])} | {rule} | {r['proposals']} ({r['proposals_right']}) | "
                     f"{r['confident']} | {_pct(r['restored'])} | {_pct(r['wrongly_changed'])} "
                     f"({r['clean_changed_rows']} of {r['clean']}) |")
    lines += ["", "Confident fixes by source (fixes / restored a noisy row / on a clean row):", ""]
    for name, r in results.items():
        src = ", ".join(f"{s}: {d['fixes']} / {d['right']} / {d['on_clean']}" for s, d in r["sources"].items())
        lines.append(f"- {name}: {src or 'none'}")
    lines += ["", "Each judge alone at eta, over the same stored proposals (the pooled judge's pick per row):", "",
              "| dataset | judge | confident | restored (of noisy) | clean rows wrongly changed |",
              "|---|---|---:|---:|---:|"]
    for name, r in results.items():
        for label, key in (("LLM only", "llm_only"), ("dataset only", "dataset_only"), ("scorer only", "scorer_only")):
            o = r[key]
            lines.append(f"| {name} | {label} | {o['confident']} | {_pct(o['restored'])} | "
                         f"{_pct(o['wrongly_changed'])} ({o['clean_changed_rows']} of {r['clean']}) |")
        lines.append(f"| {name} | pooled | {r['confident']} | {_pct(r['restored'])} | "
                     f"{_pct(r['wrongly_changed'])} ({r['clean_changed_rows']} of {r['clean']}) |")
    lines += ["", "Acceptance rule per dataset (fitted label-free on synthetic rows: corruptions of the rows kept "
              "with most confidence, and as many of them untouched as controls):", ""]
    for name, r in results.items():
        rule = r.get("rule") or {}
        if rule.get("method") == "calibrated":
            prec = "n/a" if rule["precision"] != rule["precision"] else _pct(rule["precision"])
            curve = ", ".join(f"[{lo:.2f}, {hi:.2f}): {k} / {ok}" for lo, hi, k, ok in rule["curve"] if k)
            lines.append(f"- {name}: threshold on the pooled judge {rule['threshold']:.3f}; precision at eta "
                         f"{prec} over {rule['accepted']} accepted synthetic proposals ({rule['n_proposals']} "
                         f"proposals for {rule['n_rows']} synthetic rows, kinds {rule['kinds']}); reliability "
                         f"(bin: proposals / restored): {curve or 'none'}")
        else:
            lines.append(f"- {name}: eta (not calibrated)")
    lines += ["", "Confident-learning relabel, trade-off over its threshold (restored / clean changed; the run's "
              "default last):", "", "| dataset | threshold | relabelled | restored | clean changed |",
              "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        for c in r.get("relabel_curve") or []:
            lines.append(f"| {name} | {c['threshold']:.2f} | {c['relabelled']} | {_pct(c['restored'])} | "
                         f"{_pct(c['clean_changed'])} ({c['clean_changed_rows']}) |")
    kinds = {n: r["per_kind"] for n, r in results.items() if r.get("per_kind")}
    if kinds:
        lines += ["", "Per noise kind (rows below t_keep): confident fix = the clean answer / other confident fix / "
                  "left for review:", "", "| dataset | kind | rows | restored | other fix | review |",
                  "|---|---|---:|---:|---:|---:|"]
        for name, per in kinds.items():
            for kind, d in sorted(per.items()):
                lines.append(f"| {name} | {kind} | {d['rows']} | {d['restored']} | {d['other_fix']} | {d['review']} |")
    lines.append("")
    metrics.write_markdown(args.out, lines)


if __name__ == "__main__":
    sys.exit(main())
