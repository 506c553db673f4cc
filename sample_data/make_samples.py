"""Generate the demo dataset, its noise labels and one small example file per supported format.

    python sample_data/make_samples.py [--out sample_data] [--seed 0] [--rows 400]

Deterministic for a given seed. The demo set is Alpaca JSONL of tasks a 135M-parameter model can judge (capitals,
world facts, arithmetic, unit conversions, antonyms, review sentiment, email-to-JSON extraction, grammar fixes);
22 % of its rows get one kind of injected noise, recorded in demo_labels.csv with the clean response.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import facts  # noqa: E402  (the hand-written facts next to this script)

NOISE_SHARE = 0.22
NOISE_KINDS = ("wrong_fact", "swapped", "truncated", "empty_or_na", "off_topic")  # + malformed_json for emails


# --- clean rows, one maker per task kind: each returns (instruction, input, output, wrong_output) ---------------

def capital(rng: random.Random) -> tuple[str, str, str, str]:
    country, city, wrong = rng.choice(facts.CAPITALS)
    q = rng.choice(["What is the capital of {}?", "Name the capital city of {}.", "Which city is the capital of {}?"])
    return q.format(country), "", f"The capital of {country} is {city}.", f"The capital of {country} is {wrong}."


def world_fact(rng: random.Random) -> tuple[str, str, str, str]:
    question, right, wrong = rng.choice(facts.WORLD_FACTS)
    return question, "", right, wrong


def arithmetic(rng: random.Random) -> tuple[str, str, str, str]:
    op = rng.choice("+-*")
    a, b = (rng.randint(2, 12), rng.randint(2, 12)) if op == "*" else (rng.randint(10, 99), rng.randint(2, 60))
    if op == "-" and b > a:
        a, b = b, a
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    shown = {"+": "+", "-": "-", "*": "×"}[op]
    wrong = value + rng.choice([-10, -2, -1, 1, 2, 10])
    return f"What is {a} {shown} {b}?", "", f"{a} {shown} {b} = {value}", f"{a} {shown} {b} = {wrong}"


UNITS = [("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("kilograms", "grams", 1000),
         ("hours", "minutes", 60), ("minutes", "seconds", 60), ("liters", "milliliters", 1000), ("feet", "inches", 12),
         ("days", "hours", 24), ("weeks", "days", 7)]


def unit_conversion(rng: random.Random) -> tuple[str, str, str, str]:
    src, dst, factor = rng.choice(UNITS)
    n = rng.randint(2, 9)
    wrong_factor = rng.choice([f for f in (10, 100, 1000, 12, 60, 24, 7) if f != factor])
    return (f"Convert {n} {src} to {dst}.", "", f"{n} {src} is {n * factor} {dst}.",
            f"{n} {src} is {n * wrong_factor} {dst}.")


def antonym(rng: random.Random) -> tuple[str, str, str, str]:
    word, opposite = rng.choice(facts.ANTONYMS)
    if rng.random() < 0.5:
        word, opposite = opposite, word
    return f"Give the antonym of the word '{word}'.", "", opposite, word


def sentiment(rng: random.Random) -> tuple[str, str, str, str]:
    positive = rng.random() < 0.5
    review = rng.choice(facts.POSITIVE_REVIEWS if positive else facts.NEGATIVE_REVIEWS)
    label, wrong = ("positive", "negative") if positive else ("negative", "positive")
    return "Classify the sentiment of this review as positive or negative.", review, label, wrong


def email(rng: random.Random) -> tuple[str, str, str, str]:
    name = f"{rng.choice(facts.FIRST_NAMES)} {rng.choice(facts.LAST_NAMES)}"
    date = f"{rng.choice(facts.MONTHS)} {rng.randint(1, 28)}"
    time = f"{rng.randint(8, 17)}:{rng.choice(['00', '15', '30', '45'])}"
    topic = rng.choice(facts.TOPICS)
    body = f"Hi team,\n\nLet's meet on {date} at {time} to discuss {topic}.\n\nBest regards,\n{name}"
    right = json.dumps({"name": name, "date": date, "time": time})
    other = f"{rng.choice(facts.FIRST_NAMES)} {rng.choice(facts.LAST_NAMES)}"
    wrong = json.dumps({"name": other if other != name else "Unknown Sender", "date": date, "time": time})
    return ("Extract the sender's name, the meeting date and the meeting time from this email. "
            "Answer with JSON with the keys name, date and time.", body, right, wrong)


def grammar(rng: random.Random) -> tuple[str, str, str, str]:
    broken, fixed = rng.choice(facts.GRAMMAR)
    return "Fix the grammar of this sentence.", broken, fixed, broken


KINDS = {"capital": capital, "world_fact": world_fact, "arithmetic": arithmetic, "unit_conversion": unit_conversion,
         "antonym": antonym, "sentiment": sentiment, "email_to_json": email, "grammar": grammar}


# --- noise ----------------------------------------------------------------------------------------------------

def truncate(text: str) -> str:
    """Cut a response about halfway, at a word boundary when there is one; always shorter than the original."""
    half = max(1, len(text) // 2)
    cut = text.rfind(" ", 0, half + 1)
    return text[:cut] if cut > 0 else text[:half]


def malformed(text: str, rng: random.Random) -> str:
    """Break a JSON answer the way models do: missing brace, single quotes, or a missing comma."""
    how = rng.choice(["brace", "quotes", "comma"])
    if how == "brace":
        return text.rstrip("}")
    if how == "quotes":
        return text.replace('"', "'")
    return text.replace(", ", " ", 1)


def make_demo(rng: random.Random, n_rows: int) -> tuple[list[dict], list[dict]]:
    kinds = [list(KINDS)[i % len(KINDS)] for i in range(n_rows)]
    rng.shuffle(kinds)
    clean = []
    seen: set[tuple[str, str]] = set()
    for kind in kinds:
        for _ in range(50):  # prefer distinct prompts; small fact lists may repeat after that
            instruction, inp, out, wrong = KINDS[kind](rng)
            if (instruction, inp) not in seen:
                break
        seen.add((instruction, inp))
        clean.append(dict(kind=kind, instruction=instruction, input=inp, output=out, wrong=wrong))
    noisy = set(rng.sample(range(n_rows), round(NOISE_SHARE * n_rows)))
    rows, labels = [], []
    for i, c in enumerate(clean):
        row_id = f"demo-{i + 1:04d}"
        noise, response = "clean", c["output"]
        if i in noisy:
            # wrong_fact counts twice: it is the noise a model has to know the task to catch; half of the noisy
            # email rows get broken JSON, the noise only that task can have.
            if c["kind"] == "email_to_json" and rng.random() < 0.5:
                noise = "malformed_json"
            else:
                noise = rng.choice(NOISE_KINDS + ("wrong_fact",))
            response = noisy_response(noise, c, clean, rng)
        rows.append({"id": row_id, "instruction": c["instruction"], "input": c["input"], "output": response})
        labels.append({"id": row_id, "kind": c["kind"], "noise": noise, "clean_response": c["output"]})
    return rows, labels


def noisy_response(noise: str, row: dict, clean: list[dict], rng: random.Random) -> str:
    if noise == "wrong_fact":
        return row["wrong"]
    if noise == "swapped":
        return rng.choice([c for c in clean if c["kind"] != row["kind"]])["output"]
    if noise == "truncated":
        return truncate(row["output"])
    if noise == "empty_or_na":
        return rng.choice(facts.NA_PLACEHOLDERS)
    if noise == "off_topic":
        return rng.choice(facts.OFF_TOPIC)
    return malformed(row["output"], rng)


# --- one small file per format -----------------------------------------------------------------------------------

ALPACA = [
    {"id": "a1", "instruction": "What is the capital of Italy?", "input": "",
     "output": "The capital of Italy is Rome."},
    {"id": "a2", "instruction": "Classify the sentiment of this review as positive or negative.",
     "input": "The soup was cold and bland.", "output": "negative"},
    {"id": "a3", "instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour",
     "system": "You are a concise translator."},
    {"id": "a4", "instruction": "What is 7 × 8?", "input": "", "output": "7 × 8 = 56"},
]
SHAREGPT = [
    {"id": "s1", "conversations": [{"from": "human", "value": "What is the largest planet?"},
                                   {"from": "gpt", "value": "Jupiter is the largest planet in the Solar System."}]},
    {"id": "s2", "conversations": [{"from": "system", "value": "You answer in one short sentence."},
                                   {"from": "human", "value": "How many legs does a spider have?"},
                                   {"from": "gpt", "value": "A spider has eight legs."},
                                   {"from": "human", "value": "And an ant?"},
                                   {"from": "gpt", "value": "An ant has six legs."}]},
]
MESSAGES = [
    {"id": "m1", "messages": [{"role": "user", "content": "Give the antonym of 'early'."},
                              {"role": "assistant", "content": "late"}]},
    {"id": "m2", "messages": [{"role": "system", "content": "You are a helpful maths tutor."},
                              {"role": "user", "content": "What is 12 + 30?"},
                              {"role": "assistant", "content": "12 + 30 = 42"},
                              {"role": "user", "content": "And 42 - 2?"},
                              {"role": "assistant", "content": "42 - 2 = 40"}]},
]
PROMPT_COMPLETION = [
    {"id": "p1", "prompt": "Convert 3 kilometers to meters.", "completion": "3 kilometers is 3000 meters."},
    {"id": "p2", "prompt": [{"role": "user", "content": "Fix the grammar: She go to school."}],
     "completion": [{"role": "assistant", "content": "She goes to school."}]},
]
COLUMNS = [
    {"question": "Which planet is known as the Red Planet?", "options": "Mars; Venus; Jupiter", "answer": "Mars",
     "source": "quiz"},
    {"question": "What is the chemical symbol for gold?", "options": "Ag; Au; Gd", "answer": "Au", "source": "quiz"},
    {"question": "How many days are in a leap year?", "options": "365; 366; 364", "answer": "366", "source": "quiz"},
]
COLUMNS_MAPPING = {"prompt": "{question}\nOptions: {options}", "response": "answer"}
BROKEN = [
    '{"instruction": "What is the capital of Spain?", "input": "", "output": "Madrid"}',
    '{"instruction": "What is 2 + 2?", "input": "", "output": "4"',
    '{"instruction": "Name a primary colour.", "input": ""}',
    '{"instruction": "List two fruits.", "input": "", "output": ["apple", "pear"]}',
    '{"instruction": "What is the capital of Peru?", "input": "", "output": "   "}',
    '{"instruction": "What is the capital of Chile?", "input": "", "output": "Santiago"}',
]


def write_jsonl(path: str, rows: list) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")


def write_examples(folder: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(folder, exist_ok=True)
    write_jsonl(os.path.join(folder, "alpaca.jsonl"), ALPACA)
    with open(os.path.join(folder, "sharegpt.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(SHAREGPT, f, ensure_ascii=False, indent=2)
        f.write("\n")
    write_jsonl(os.path.join(folder, "messages.jsonl"), MESSAGES)
    write_jsonl(os.path.join(folder, "prompt_completion.jsonl"), PROMPT_COMPLETION)
    with open(os.path.join(folder, "columns.csv"), "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(COLUMNS)
    table = pa.Table.from_pylist([{k: r.get(k) for k in ("id", "instruction", "input", "output", "system")}
                                  for r in ALPACA])
    pq.write_table(table, os.path.join(folder, "alpaca.parquet"))
    write_jsonl(os.path.join(folder, "broken.jsonl"), BROKEN)


def generate(out: str, seed: int = 0, n_rows: int = 400) -> None:
    """Write demo.jsonl, demo_labels.csv and examples/ under `out`."""
    os.makedirs(out, exist_ok=True)
    rows, labels = make_demo(random.Random(seed), n_rows)
    write_jsonl(os.path.join(out, "demo.jsonl"), rows)
    with open(os.path.join(out, "demo_labels.csv"), "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "kind", "noise", "clean_response"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(labels)
    write_examples(os.path.join(out, "examples"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=400)
    args = parser.parse_args(argv)
    generate(args.out, args.seed, args.rows)
    print(f"wrote {args.rows} demo rows and the examples to {args.out}")


if __name__ == "__main__":
    main()
