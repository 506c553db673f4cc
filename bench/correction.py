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


def evaluate(name, data, clean, ws, backend, args, log) -> dict:
    from clear_core import filtering
    from clear_core.config import CorrectConfig, preset_config
    from clear_core.correct import JUDGE_SIGNALS, same_answer

    info = ingest_rows(ws, f"{name}-{len(data.rows)}", data.rows)
    run_id = scored_run(ws, info, preset_config("fast", model=args.model, batch_size=16), backend, log)
    thr = filtering.run_thresholds(ws, run_id, eta=args.eta)
    idx, conf = filtering.run_confidence(ws, run_id)
    cid = corrected_run(ws, info, run_id, CorrectConfig(eta=args.eta, max_new_tokens=args.max_new_tokens), thr,
                        backend, log)
    props = ws.proposals(cid)
    parts = ws.scores_wide(cid)
    for col in JUDGE_SIGNALS:
        if col not in parts.columns:
            parts[col] = np.nan
    props = props.merge(parts[["row_idx", *JUDGE_SIGNALS]], on="row_idx", how="left")
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
    flagged = conf < thr.t_keep
    p, r = metrics.precision_recall_below(conf, bad, thr.t_keep)
    out = {"rows": len(idx), "noisy": int(bad.sum()), "clean": n_clean, "auroc": metrics.auroc(conf, bad),
           "flagged": int(flagged.sum()), "precision": p, "recall": r, "proposals": len(props),
           "proposals_right": int(sum(cand_right)),
           "with_dataset_judge": int(props["judge_dataset"].notna().sum()),
           **pooled, "llm_only": llm_only, "dataset_only": data_only}
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
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from clear_core.backends import load_backend
    from clear_core.store import Workspace

    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: E731
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    backend = load_backend(args.model)
    limits = {k.strip(): int(v) for k, v in (x.split("=") for x in args.limits.split(",") if x.strip())}
    results = {}
    with Workspace.open(work / "ws.duckdb") as ws:
        for name in args.datasets.split(","):
            if name == "sample" and not (Path(args.sample_dir) / "demo.jsonl").exists():
                log("sample data not generated: skipped")
                continue
            limit = limits.get(name, args.limit) or None
            data = datasets.load(name, args.benchmarks, args.sample_dir, limit=limit)
            clean = clean_answers(name, data, args.benchmarks, args.sample_dir, limit)
            log(f"{name}: {len(data.rows)} rows, {int(data.is_bad.sum())} noisy")
            t0 = time.time()
            results[name] = evaluate(name, data, clean, ws, backend, args, log)
            results[name]["seconds"] = time.time() - t0
            log(f"{name}: {json.dumps(results[name])}")
            write_table(args, results, backend.name)  # after each dataset, so a cut-short run keeps its table
    return 0


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
        for label, key in (("LLM only", "llm_only"), ("dataset only", "dataset_only")):
            o = r[key]
            lines.append(f"| {name} | {label} | {o['confident']} | {_pct(o['restored'])} | "
                         f"{_pct(o['wrongly_changed'])} ({o['clean_changed_rows']} of {r['clean']}) |")
        lines.append(f"| {name} | pooled | {r['confident']} | {_pct(r['restored'])} | "
                     f"{_pct(r['wrongly_changed'])} ({r['clean_changed_rows']} of {r['clean']}) |")
    lines.append("")
    metrics.write_markdown(args.out, lines)


if __name__ == "__main__":
    sys.exit(main())
