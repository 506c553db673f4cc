"""Benchmark datasets as rows + ground truth, shared by the benchmark scripts.

A row is a dict {"id", "prompt": [{"role": "user", "content": ...}], "response"}; ground truth is a boolean array
`is_bad` aligned with the rows (True = the response is noise). Data is read where it lies, never copied:
* the project's sample data (`sample_data/demo.jsonl` + `demo_labels.csv`, noise != "clean" is bad);
* a long-prompt variant of a RobustFT task ("fpb-long"): each row's sentence sits at a seeded place inside a
  passage of other rows' sentences (a PubMedQA-like shape: a long passage, then a question with its options), so
  the words that decide the answer are a small part of the prompt; same answers, same ground truth;
* the RobustFT benchmark CSVs (`<benchmarks>/robustft/<task>/<split>.csv`): prompt = the question, the lettered
  options and an instruction to answer with the letter; response = the given letter and its option text
  ("C. positive"). Ground truth: noisy[i].answer != labeled[i].answer (rows aligned by position). The `gt`
  column of the fpb files is never read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

LETTERS = "ABCDEFGHIJ"
INSTRUCTION = "Answer with the letter of the correct option."


@dataclass(frozen=True)
class BenchData:
    name: str
    rows: list[dict]
    is_bad: np.ndarray
    info: dict = field(default_factory=dict)  # per-dataset extras (e.g. options and given letters)


def option_prompt(question: str, options: list[str]) -> str:
    """The question, its options as "A. text" lines, and the answer instruction."""
    lines = [str(question).strip()] + [f"{LETTERS[i]}. {o}" for i, o in enumerate(options)] + [INSTRUCTION]
    return "\n".join(lines)


def option_response(letter: str, options: list[str]) -> str:
    """The given letter followed by its option text, e.g. "C. positive"."""
    letter = str(letter).strip().upper()
    return f"{letter}. {options[LETTERS.index(letter)]}"


def _read_answers(path: Path) -> pd.DataFrame:
    # usecols keeps the `gt` column of the fpb files out of memory entirely
    return pd.read_csv(path, usecols=lambda c: c in ("id", "question", "options", "answer"))


def load_robustft(benchmarks: str | Path, task: str, split: str = "noisy30", limit: int | None = None) -> BenchData:
    """Rows of one RobustFT split with the flipped-answer ground truth (from labeled.csv)."""
    folder = Path(benchmarks) / "robustft" / task
    noisy, labeled = _read_answers(folder / f"{split}.csv"), _read_answers(folder / "labeled.csv")
    if len(noisy) != len(labeled):
        raise ValueError(f"{folder}: {split}.csv has {len(noisy)} rows, labeled.csv {len(labeled)}")
    if limit:
        noisy, labeled = noisy.iloc[:limit], labeled.iloc[:limit]
    rows, letters, opts_all = [], [], []
    for i, (q, o, a) in enumerate(zip(noisy["question"], noisy["options"], noisy["answer"])):
        opts = json.loads(o)
        rows.append({"id": str(noisy["id"].iloc[i]) if "id" in noisy else f"{task}-{i}",
                     "prompt": [{"role": "user", "content": option_prompt(q, opts)}],
                     "response": option_response(a, opts)})
        letters.append(str(a).strip().upper())
        opts_all.append(opts)
    is_bad = noisy["answer"].str.strip().str.upper().to_numpy() != labeled["answer"].str.strip().str.upper().to_numpy()
    return BenchData(f"{task}/{split}", rows, is_bad, {"letters": letters, "options": opts_all})


def load_sample(sample_dir: str | Path, limit: int | None = None) -> BenchData:
    """The project's demo data (Alpaca JSONL with ids) and its noise labels."""
    sample_dir = Path(sample_dir)
    labels = pd.read_csv(sample_dir / "demo_labels.csv", dtype={"id": str})
    noise = dict(zip(labels["id"], labels["noise"].astype(str)))
    kinds = dict(zip(labels["id"], labels["kind"].astype(str))) if "kind" in labels else {}
    rows, is_bad, row_kinds, row_noise = [], [], [], []
    with open(sample_dir / "demo.jsonl", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            rid = str(rec["id"])
            if rid not in noise:
                raise ValueError(f"{sample_dir / 'demo.jsonl'}:{line_no}: id {rid} has no label in demo_labels.csv")
            text = rec.get("instruction", "")
            if rec.get("input"):
                text = f"{text}\n\n{rec['input']}" if text else rec["input"]
            rows.append({"id": rid, "prompt": [{"role": "user", "content": text}], "response": rec.get("output", "")})
            is_bad.append(noise[rid] != "clean")
            row_kinds.append(kinds.get(rid, ""))
            row_noise.append(noise[rid])
            if limit and len(rows) >= limit:
                break
    return BenchData("sample", rows, np.array(is_bad, dtype=bool), {"kind": row_kinds, "noise": row_noise})


LONG_SUFFIX = "-long"
LONG_PASSAGE = 10  # sentences per passage: the row's own and nine others (about 300 tokens on fpb)


def long_prompts(data: BenchData, seed: int = 0, passage: int = LONG_PASSAGE) -> BenchData:
    """`data` with each prompt made long: the row's item (the last line of its question) at a seeded place in a
    passage of other rows' items, then the question quoting it, the options and the instruction."""
    rng = np.random.default_rng(seed)
    items = [r["prompt"][0]["content"].split("\n")[-len(data.info["options"][i]) - 2] for i, r in enumerate(data.rows)]
    rows = []
    for i, row in enumerate(data.rows):
        others = [items[j] for j in rng.choice(len(items), passage, replace=False) if j != i][:passage - 1]
        at = int(rng.integers(len(others) + 1))
        text = " ".join(others[:at] + [items[i]] + others[at:])
        question = f'Read the report, then answer the question.\n\nReport:\n{text}\n\n' \
                   f'Question: what is the sentiment of this sentence of the report: "{items[i]}"'
        rows.append({**row, "prompt": [{"role": "user", "content": option_prompt(question, data.info["options"][i])}]})
    return BenchData(data.name + LONG_SUFFIX, rows, data.is_bad, data.info)


def load(name: str, benchmarks: str | Path, sample_dir: str | Path, limit: int | None = None) -> BenchData:
    """A dataset by short name: "sample", "fpb", "arc" (noisy30), "fpb:noisy50" style, or "fpb-long" (see
    `long_prompts`)."""
    if name == "sample":
        return load_sample(sample_dir, limit)
    task, _, split = name.partition(":")
    if task.endswith(LONG_SUFFIX):
        return long_prompts(load_robustft(benchmarks, task[:-len(LONG_SUFFIX)], split or "noisy30", limit))
    return load_robustft(benchmarks, task, split or "noisy30", limit)
