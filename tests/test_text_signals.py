"""The text signals: cases that must fire and look-alike clean rows that must not."""

import numpy as np
import pytest

from clear_core.signals import appended, arithmetic, artifacts, placeholder, unseen_input

CLEAN = ["Paris is the capital of France.", "Mix the flour and the eggs, then bake for 20 minutes.",
         "The poem:\nRoses are red,\nviolets are blue.", "Photosynthesis turns light into chemical energy."] * 10


def _values(module, prompts, responses):
    model = module.fit(prompts, responses)
    return module.score(model, prompts, responses)[0]


def _one(module, prompt, response, background=CLEAN):
    """The value of one row scored among clean background rows (dataset-relative signals need a dataset)."""
    prompts = ["Say something."] * len(background) + [prompt]
    return _values(module, prompts, list(background) + [response])[-1]


@pytest.mark.parametrize("response", [
    "Paris.\n\n##\n\n2. Write a haiku about autumn.\n\nLeaves fall slowly down",
    "Paris.\n\n### Instruction:\nName a river.\n\n### Response:\nThe Nile",
    "Paris.\nInstruction: Name a river.\nOutput: The Nile",
    "Paris is the capital.\n\n3. Explain gravity.\nGravity pulls masses together.",
])
def test_appended_fires_on_a_second_instruction(response):
    assert _one(appended, "What is the capital of France?", response) < 0.2


@pytest.mark.parametrize("response", [
    "Steps:\n\n1. Mix the flour.\n\n2. Add the eggs.\n\n3. Bake.",   # a numbered list, not a new task
    "The capital of France is Paris; its river is the Seine.",
])
def test_appended_ignores_lists_and_plain_text(response):
    assert _one(appended, "How do I bake a cake?", response) == 1.0


def test_appended_is_dataset_relative_for_markdown_headings():
    # a dataset whose answers all use "##" sections: the heading is the dataset's style, not a merged row
    rows = [f"## Summary\n\nPoint {i}.\n\n##\n\nMore about {i}." for i in range(30)]
    values = _values(appended, ["Summarise."] * 30, rows)
    assert values.min() == 1.0


@pytest.mark.parametrize("response,expected", [
    ("", placeholder.EMPTY), ("   ", placeholder.EMPTY), ("N/A", placeholder.EMPTY),
    ("<No Output>", placeholder.EMPTY), ("[Your answer here]", placeholder.EMPTY), ("TBD", placeholder.EMPTY),
    ("As an AI language model, I cannot answer that.", placeholder.REFUSAL),
    ("I'm sorry, but I cannot help with this request.", placeholder.REFUSAL),
])
def test_placeholder_fires(response, expected):
    assert _one(placeholder, "Write a story.", response) == expected


@pytest.mark.parametrize("response", ["None of the above options is prime, so the answer is D.",
                                      "I'm sure the answer is 4.", "No. The Earth orbits the Sun."])
def test_placeholder_ignores_real_answers(response):
    assert _one(placeholder, "Question?", response) == 1.0


def test_placeholder_keeps_a_common_label():
    # "None" as one of a multiple-choice set's answers is a label, not a placeholder
    responses = ["None", "A", "B", "C"] * 10
    assert _values(placeholder, ["Pick one."] * 40, responses).min() == 1.0


@pytest.mark.parametrize("prompt", [
    "Summarize the article at this link: https://www.example.com/news/2021/03/update.html",
    "Describe what is shown in the picture. <Picture Attached>",
    "What does this chart show? [Attached: chart.png]",
])
def test_unseen_input_fires_when_the_answer_pretends_to_see(prompt):
    answer = "The article explains that markets rose sharply in March, driven by tech stocks and low rates."
    assert unseen_input.check(prompt, answer) < 0.2


@pytest.mark.parametrize("prompt,response", [
    # a tool call that uses the link: legitimate tool-use data
    ("toolformer: enabled\ntoolformer access: request\nA portal to the internet. Use this when you need to get "
     "specific content from a site. Input should be a specific url.\nrequest(url)\nGet the homepage of "
     "https://www.example.com", "The homepage content is request('https://www.example.com')."),
    # the answer says it cannot see the picture
    ("Describe the picture. <Picture Attached>", "I cannot see the picture; please describe it in words."),
    # a long prompt that mentions a link in passing
    ("Our company, founded in 1999, sells garden tools in twelve countries and employs three hundred people "
     "across two factories and five offices; more at https://example.com. Write a one-line slogan for it.",
     "Tools that grow with your garden."),
])
def test_unseen_input_ignores_look_alikes(prompt, response):
    assert unseen_input.check(prompt, response) == 1.0


@pytest.mark.parametrize("response", [
    "Paris is the capital &amp; largest city.", "First line\\nsecond line", "Paris\x0bis the capital.",
    "CafÃ© culture is part of Paris.", "Paris\u200b\u200bis big.",
])
def test_artifacts_fire_when_rare_in_the_dataset(response):
    assert _one(artifacts, "Tell me about Paris.", response) < 0.2


def test_artifacts_ignore_code_and_common_patterns():
    code = "Use this:\n```python\nprint('a\\nb')\n```"
    assert _one(artifacts, "How do I print two lines?", code) == 1.0
    assert _one(artifacts, "Print two lines.", "Use `print('a\\nb')`.") == 1.0
    # a dataset where escapes are normal (every answer is a JSON string literal)
    rows = [f'"line {i}\\nline {i + 1}"' for i in range(30)]
    assert _values(artifacts, ["Give JSON."] * 30, rows).min() == 1.0
    # the response copies an entity its prompt already has
    assert _one(artifacts, "Fix: Tom &amp; Jerry", "Tom &amp; Jerry is a cartoon.") == 1.0


@pytest.mark.parametrize("response", [
    "We have 56 + 40 = 96 animals.\nSo, we have 200 – 96 = 112 goats",
    "He earns $20/hour * 3 hours = $70",
    "$80,000 * 140% = $112,000 and then $112,000 * 120% = $83,124",
    "So 40 + 2 = 42.\n#### 41",
    "9 kilometers is 63 meters.", "There are 100 minutes in an hour.", "A foot has 13 inches.",  # unit definitions
    "Convert first: 2 weeks = 10 days, then add 3.",
])
def test_arithmetic_fires_on_contradictions(response):
    assert arithmetic.check(response)[0] <= arithmetic.STEP_WRONG


@pytest.mark.parametrize("response", [
    "We have 56 + 40 = 96 animals.\nSo, we have 200 – 96 = 104 goats",
    "He earns $20/hour * 3 hours = $60", "1 000 000 + 500 000 = 1 500 000 cars", "100/3 = 33 per box",
    "2x + 3 = 7 so x = 2",                       # algebra, not arithmetic
    "27 days*1 hour a day = 27 hours", "The ratio is 7/12 / 1/12 = 7",  # ambiguous fractions are skipped
    "There is no arithmetic here = fine.", "So 40 + 2 = 42.\n#### 42",
    "7 days is 168 hours.", "There are 60 minutes in an hour.", "2.5 kg is 2,500 grams", "A yard has 3 feet.",
    "60 minutes/week * 2 weeks = 120 minutes",   # an amount inside a product is no conversion
    "1 mile is 1.6 km", "5 pounds is about 2.3 kg",  # across systems: rounded on purpose, not checked
    "A month has 30 days.", "The second day is 3 hours long",  # months have no one size; "second" as an ordinal
])
def test_arithmetic_ignores_correct_or_uncheckable_work(response):
    assert arithmetic.check(response)[0] == 1.0


@pytest.mark.parametrize("module", [appended, placeholder, unseen_input, artifacts, arithmetic])
def test_values_are_scores_in_unit_interval(module):
    prompts = ["Q?"] * 6
    responses = ["", "N/A", "1 + 1 = 3", "a &amp; b", "ok\n\n##\n\n2. Next task", "fine"]
    values, raw = module.score(module.fit(prompts, responses), prompts, responses)
    assert values.shape == raw.shape == (6,)
    assert np.all((values >= 0) & (values <= 1))
