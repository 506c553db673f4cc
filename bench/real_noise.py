"""Detection on real instruction rows with the errors real SFT data carries (a free-text benchmark of our own).

    .venv/bin/python -m bench.real_noise --benchmarks ../shared/benchmarks [--preset fast] [--rate 0.22] [--seed 0]
        [--limit N] [--cache /tmp/clear_bench_cache]

Reads `<benchmarks>/real_sft/clean.jsonl` (1200 clean Alpaca rows: GSM8K worked answers, GPT-4 Toolformer and
Roleplay rows) where it lies, corrupts a seeded share of them (`--rate`, default 22 %) with one error kind each, and
scores every row with the product's own code (bench.quality.evaluate: the preset's signals, the dataset signals and
the label-free calibration). It prints AUROC overall and per kind for `confidence` and every signal, next to a
rule-only baseline (a handful of regular expressions) and random, in one run.

The corruptions follow the error kinds listed in AlpacaDataCleaned's README and the curation literature; their
templates are written here and share no code with the product's own label-free calibration, so the product is not
scored on the corruptions it fits its weights to.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from bench import metrics
from bench.datasets import BenchData

KINDS = ("merged", "placeholder", "unseen_input", "wrong_math", "artifacts", "swapped", "truncated", "wrong_fact")

# Placeholder outputs as they occur in public SFT sets (empty, N/A, <No Output>, template leftovers, refusals).
PLACEHOLDERS = ("", "N/A", "<No Output>", "<nooutput>", "No output", "Output not available.", "[Your answer here]",
                "TBD", "...", "None", "As an AI language model, I cannot answer that.",
                "I'm sorry, but I cannot help with this request.")
# Inputs a text-only model cannot see.
UNSEEN = ("https://www.example.com/articles/2021/03/market-update.html", "<Picture Attached>", "<image>",
          "https://youtu.be/dQw4w9WgXcQ", "[Attached: report.pdf]", "http://bit.ly/3xYz12")
UNSEEN_TASKS = ("Summarize the article at this link: {m}", "Describe what is shown in the picture. {m}",
                "Answer the question in the attached file. {m}", "What is the main point of this video? {m}",
                "Read the document and list its key findings. {m}", "Explain the chart below.\n{m}")
MERGE_TEMPLATES = ("{a}\n\n##\n\n2. {q}\n\n{r}", "{a}\n\n### Instruction:\n{q}\n\n### Response:\n{r}",
                   "{a}\nInstruction: {q}\nOutput: {r}", "{a}\n\n{n}. {q}\n{r}")
ENTITIES = ("&amp;", "&quot;", "&#39;", "&lt;br&gt;", "&nbsp;")
ESCAPES = ("\\n", "\\t", "\\u00e9", "\\\"", "\\r\\n")
CONTROLS = ("\x0b", "\x0c", "\x1b", "\x08", "\u200b\u200b")

EQUATION = re.compile(r"(=\s*\$?)(-?\d[\d,]*(?:\.\d+)?)")
NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(?![\w.])")
ENTITY = re.compile(r"(?<=[a-z,;] )([A-Z][a-z]{2,}(?: [A-Z][a-z]{2,})?)")


def load_clean(benchmarks: str | Path, limit: int | None = None) -> list[dict]:
    """The clean Alpaca rows of real_sft (id, instruction, input, output), in file order."""
    path = Path(benchmarks) / "real_sft" / "clean.jsonl"
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            missing = [k for k in ("instruction", "output") if k not in rec]
            if missing:
                raise ValueError(f"{path}:{line_no}: missing field {missing[0]!r}")
            rows.append({"id": str(rec.get("id", line_no)), "instruction": rec["instruction"],
                         "input": rec.get("input", ""), "output": rec["output"]})
            if limit and len(rows) >= limit:
                break
    return rows


def _prompt(instruction: str, inp: str) -> str:
    return f"{instruction}\n\n{inp}" if inp else instruction


def _applicable(row: dict) -> list[str]:
    kinds = [k for k in KINDS if k not in ("wrong_math", "wrong_fact", "truncated")]
    if len(EQUATION.findall(row["output"])) >= 1 and re.search(r"\d\s*[-+*/x×÷–]\s*\$?\d", row["output"]):
        kinds.append("wrong_math")
    if NUMBER.search(row["output"]) or ENTITY.search(row["output"]):
        kinds.append("wrong_fact")
    if len(row["output"].split()) >= 12:
        kinds.append("truncated")
    return kinds


def _other(rng, rows, i) -> dict:
    j = int(rng.integers(len(rows) - 1))
    return rows[j + (j >= i)]


def _shift(number: str, rng) -> str:
    """A different number of the same form (integer or decimal, commas dropped)."""
    value = float(number.replace(",", ""))
    for _ in range(10):
        new = value + rng.choice([-1, 1]) * max(1.0, round(abs(value) * rng.uniform(0.1, 0.5)))
        if new != value and new >= 0:
            break
    return f"{new:.2f}" if "." in number else str(int(new))


def corrupt_row(kind: str, row: dict, rows: list[dict], i: int, rng) -> tuple[str, str]:
    """(prompt, response) of row i with one error of `kind`."""
    prompt, out = _prompt(row["instruction"], row["input"]), row["output"]
    if kind == "merged":
        o = _other(rng, rows, i)
        return prompt, str(rng.choice(MERGE_TEMPLATES)).format(a=out, q=_prompt(o["instruction"], o["input"])[:400],
                                                               r=o["output"][:400], n=int(rng.integers(2, 6)))
    if kind == "placeholder":
        return prompt, str(rng.choice(PLACEHOLDERS))
    if kind == "unseen_input":
        # the input replaced by something a text-only model cannot see; the answer still answers as if it could
        task = str(rng.choice(UNSEEN_TASKS)).format(m=rng.choice(UNSEEN))
        return task, out
    if kind == "wrong_math":
        found = list(EQUATION.finditer(out))
        m = found[-1] if rng.random() < 0.7 else found[int(rng.integers(len(found)))]
        return prompt, out[:m.start(2)] + _shift(m.group(2), rng) + out[m.end(2):]
    if kind == "artifacts":
        words = out.split(" ")
        pool = ENTITIES + ESCAPES + CONTROLS
        for _ in range(int(rng.integers(2, 5))):
            pos = int(rng.integers(len(words)))
            words[pos] = words[pos] + str(rng.choice(pool))
        text = " ".join(words)
        if "\n" in text and rng.random() < 0.5:
            text = text.replace("\n", "\\n")
        return prompt, text
    if kind == "swapped":
        return prompt, _other(rng, rows, i)["output"]
    if kind == "truncated":
        words = out.split()
        cut = int(len(words) * rng.uniform(0.25, 0.6))
        return prompt, " ".join(words[:max(3, cut)])
    if kind == "wrong_fact":
        nums = list(NUMBER.finditer(out))
        if nums and (rng.random() < 0.6 or not ENTITY.search(out)):
            m = nums[int(rng.integers(len(nums)))]
            return prompt, out[:m.start()] + _shift(m.group(1), rng) + out[m.end():]
        ents = [m for m in ENTITY.finditer(out)]
        m = ents[int(rng.integers(len(ents)))]
        others = [e.group(1) for r in rows for e in ENTITY.finditer(r["output"][:300]) if e.group(1) != m.group(1)]
        return prompt, out[:m.start()] + str(rng.choice(others)) + out[m.end():]
    raise ValueError(f"unknown kind {kind}")


def make(clean: list[dict], rate: float = 0.22, seed: int = 0) -> BenchData:
    """The benchmark rows: a seeded `rate` of them corrupted, each with one kind drawn among those that apply to
    it, kinds balanced (the least used applicable kind is drawn first)."""
    rng = np.random.default_rng(seed)
    n = len(clean)
    chosen = set(rng.choice(n, size=int(round(rate * n)), replace=False).tolist())
    used = {k: 0 for k in KINDS}
    rows, noise = [], []
    for i, row in enumerate(clean):
        prompt, response, kind = _prompt(row["instruction"], row["input"]), row["output"], "clean"
        if i in chosen:
            options = _applicable(row)
            low = min(used[k] for k in options)
            kind = str(rng.choice([k for k in options if used[k] == low]))
            used[kind] += 1
            prompt, response = corrupt_row(kind, row, clean, i, rng)
        rows.append({"id": row["id"], "prompt": [{"role": "user", "content": prompt}], "response": response})
        noise.append(kind)
    noise = np.array(noise)
    return BenchData("real_noise", rows, noise != "clean", {"noise": list(noise)})


# The rule-only baseline: what a handful of regular expressions finds (1 = no rule fired).
RULES = {
    "placeholder": re.compile(r"^\s*(|n/?a|none|tbd|\.\.\.|<\s*no\s*output\s*>|no output\.?|output not available\.?|"
                              r"\[.*here\])\s*$|as an ai language model|i'?m sorry, but i cannot", re.I),
    "merged": re.compile(r"\n\s*#{2,}|### ?instruction|\ninstruction:|\n\d+\.\s+\S.*\?\s*$", re.I | re.M),
    "unseen": re.compile(r"<\s*(picture|image)[^>]*>|\[attached", re.I),
    "artifacts": re.compile(r"&(amp|quot|lt|gt|nbsp|#\d+);|\\[ntr\"]|\\u[0-9a-f]{4}|[\x00-\x08\x0b\x0c\x0e-\x1f\u200b]"),
}


def rule_baseline(rows: list[dict]) -> np.ndarray:
    """1 - 0.25 x (number of rules that fire on the row), in [0, 1], higher = more trustworthy."""
    out = np.ones(len(rows))
    for i, r in enumerate(rows):
        prompt = r["prompt"][-1]["content"]
        hits = sum(bool(RULES[k].search(r["response"])) for k in ("placeholder", "merged", "artifacts"))
        hits += bool(RULES["unseen"].search(prompt))
        out[i] -= 0.25 * hits
    return out


def per_kind_table(values: dict[str, np.ndarray], noise: np.ndarray) -> list[str]:
    """Markdown lines: AUROC overall and for each kind (its bad rows against all clean rows) per method."""
    kinds = [k for k in KINDS if (noise == k).any()]
    clean = noise == "clean"
    lines = ["| method | overall | " + " | ".join(f"{k} ({int((noise == k).sum())})" for k in kinds) + " |",
             "|---|---:|" + "---:|" * len(kinds)]
    for name, v in values.items():
        v = np.where(np.isnan(v), np.nanmean(v), v)
        cells = [metrics.report(v, ~clean)["auroc"]]
        cells += [metrics.report(v[clean | (noise == k)], (noise == k)[clean | (noise == k)])["auroc"] for k in kinds]
        lines.append(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--benchmarks", required=True, help="the shared benchmarks folder (holds real_sft/)")
    ap.add_argument("--rate", type=float, default=0.22, help="share of rows corrupted")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="first N clean rows")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--model", default="default")
    ap.add_argument("--synthetic", type=int, default=200, help="rows sampled for label-free calibration")
    ap.add_argument("--cache", default="/tmp/clear_bench_cache")
    ap.add_argument("--prompt-tail-tokens", type=int, default=None,
                    help="prompt tokens pooled into the prompt embedding (0 = the whole prompt; default: the config's)")
    ap.add_argument("--rules-only", action="store_true", help="only the rule baseline and random (no model)")
    ap.add_argument("--in-context", action="store_true",
                    help="also run the in-context pass when the preset does not use it (slow on long rows)")
    args = ap.parse_args(argv)

    data = make(load_clean(args.benchmarks, args.limit), args.rate, args.seed)
    noise = np.asarray(data.info["noise"])
    print(f"# real_noise: {len(noise)} rows, {int(data.is_bad.sum())} corrupted (seed {args.seed}); kinds "
          + json.dumps({k: int((noise == k).sum()) for k in KINDS}), flush=True)
    baselines = {"baseline: rules": rule_baseline(data.rows),
                 "baseline: random": np.random.default_rng(0).random(len(noise))}
    if args.rules_only:
        print("\n".join(per_kind_table(baselines, noise)))
        return 0

    from bench import quality
    from clear_core.backends import load_backend
    from clear_core.config import preset_config

    config = preset_config(args.preset, model=args.model, prompt_tail_tokens=args.prompt_tail_tokens)
    backend = load_backend(args.model)
    print(f"model {backend.name} ({backend.n_params / 1e6:.0f}M params, {backend.device}, {backend.dtype}); "
          f"preset {args.preset}", flush=True)
    in_context = args.in_context or quality.uses_context(config)
    results, per_kind = quality.evaluate(data.name, data, backend, config, Path(args.cache) / "quality",
                                         args.synthetic, in_context=in_context)
    quality.print_table(data.name, results)
    values, _ = per_kind
    print(f"\n## real_noise: AUROC overall and per kind (preset {args.preset}, calibrated confidence first)")
    print("\n".join(per_kind_table({**values, **baselines}, noise)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
