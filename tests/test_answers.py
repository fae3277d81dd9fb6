"""Answer normalisation (GSM8K numeric, Hendrycks MATH), problem files and the arithmetic generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenarios._answers import check_answer, format_fraction, last_boxed, normalise_gold, normalise_math
from scenarios._problems import ProblemFileError, arithmetic_problem, load_gsm8k, load_math

CORPUS = Path(__file__).parent / "data" / "answer_corpus.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def test_corpus_is_large_and_awkward():
    assert len(ROWS) >= 60
    notes = " ".join(r["note"] for r in ROWS)
    for kind in ("unit", "separator", "LaTeX", "fraction", "negative", "percent", "several numbers", "trailing"):
        assert kind.lower() in notes.lower(), kind
    assert {r["style"] for r in ROWS} == {"gsm8k", "math"}
    assert {r["reward"] for r in ROWS if r["style"] == "gsm8k"} == {-1.0, 0.0, 1.0}
    assert {r["reward"] for r in ROWS if r["style"] == "math"} == {0.0, 1.0}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['style']}-{i}-{r['note'][:30]}" for i, r in enumerate(ROWS)])
def test_corpus(row):
    checked = check_answer(row["style"], row["reply"], normalise_gold(row["style"], row["gold"]))
    assert (checked.answer, checked.correct, checked.reward) == (row["answer"], row["correct"], row["reward"])


def test_last_boxed_balances_braces():
    assert last_boxed(r"\boxed{\frac{\sqrt{3}}{2}} then \boxed{\left\{1\right\}}") == r"\left\{1\right\}"
    assert last_boxed("no box") is None
    assert last_boxed(r"\boxed{unclosed") is None


def test_numbers_are_exact_and_canonical():
    from fractions import Fraction

    assert format_fraction(Fraction(1, 3)) == "1/3"
    assert format_fraction(Fraction("1234567890.125")) == "1234567890.125"
    assert format_fraction(Fraction(10**20)) == str(10**20)
    assert normalise_math(r"\left( \dfrac12, .5 \right)") == r"(\frac{1}{2},0.5)"


def _write(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_load_gsm8k(tmp_path):
    path = _write(tmp_path / "gsm.jsonl", [
        {"question": "Tom has 3 apples and buys 2. How many?", "answer": "3 + 2 = <<3+2=5>>5\n#### 5"},
        "",
        {"question": "A big one?", "answer": "It is many.\n#### 1,200"},
    ])
    problems = load_gsm8k(path)
    assert [p.answer for p in problems] == ["5", "1200"]
    assert problems[1].source.endswith("gsm.jsonl:3")
    assert check_answer("gsm8k", r"\boxed{1,200}", problems[1].answer).correct


@pytest.mark.parametrize("content, message", [
    (['{"question": "q", "answer": "no gold"}'], "gsm.jsonl:1: the answer has no '#### N' line"),
    (['{"question": "q", "answer": "#### lots"}'], "gsm.jsonl:1: the answer '#### lots' is not a number"),
    (['{"question": "q", "answer": "#### 1"}', "{not json"], "gsm.jsonl:2: not valid JSON"),
    (['{"problem": "q", "solution": "s"}'], "gsm.jsonl:1: needs a non-empty string 'question' (keys: problem, solution)"),
    (['[1, 2]'], "gsm.jsonl:1: expected a JSON object, got list"),
    ([""], "holds no problems"),
])
def test_malformed_gsm8k_files_name_the_line(tmp_path, content, message):
    path = _write(tmp_path / "gsm.jsonl", content)
    with pytest.raises(ProblemFileError) as info:
        load_gsm8k(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_math_and_its_errors(tmp_path):
    path = _write(tmp_path / "math.jsonl", [
        {"problem": "What is 1/2 + 0?", "solution": r"It is $\boxed{\dfrac{1}{2}}$."},
        {"problem": "Point?", "solution": r"$\boxed{\left(1, 2\right)}$"},
    ])
    problems = load_math(path)
    assert [p.answer for p in problems] == [r"\frac{1}{2}", "(1,2)"]
    assert check_answer("math", r"\boxed{0.5}", problems[0].answer).correct
    bad = _write(tmp_path / "bad.jsonl", [{"problem": "p", "solution": "the answer is 3"}])
    with pytest.raises(ProblemFileError, match=r"bad.jsonl:1: the solution has no \\boxed\{...\} answer"):
        load_math(bad)
    with pytest.raises(ProblemFileError, match="does not exist"):
        load_math(tmp_path / "missing.jsonl")


def test_files_are_reread_when_they_change(tmp_path):
    path = _write(tmp_path / "gsm.jsonl", [{"question": "q", "answer": "#### 1"}])
    assert load_gsm8k(path)[0].answer == "1"
    _write(path, [{"question": "q", "answer": "#### 22"}])
    assert load_gsm8k(path)[0].answer == "22"


def test_arithmetic_generator_is_seeded_and_correct():
    first = [arithmetic_problem(seed, steps=3, max_number=30, operations="+-*/") for seed in range(200)]
    again = [arithmetic_problem(seed, steps=3, max_number=30, operations="+-*/") for seed in range(200)]
    assert first == again
    assert len({p.question for p in first}) > 190
    for problem in first:
        # recompute the answer from the text, independently of the generator
        import re

        words = {"doubles": 2, "triples": 3, "quadruples": 4}
        sentences = problem.question.split(". ")
        amount = int(re.search(r"has (\d+)", sentences[0]).group(1))
        for sentence in sentences[1:]:
            if m := re.search(r"gets? (\d+) more", sentence):
                amount += int(m.group(1))
            elif m := re.search(r"gives? (\d+) .* away", sentence):
                amount -= int(m.group(1))
            elif m := re.search(r"(doubles|triples|quadruples)", sentence):
                amount *= words[m.group(1)]
            elif m := re.search(r"into (\d+) equal piles", sentence):
                assert amount % int(m.group(1)) == 0
                amount //= int(m.group(1))
            assert amount >= 0
        assert problem.answer == str(amount), problem.question


def test_arithmetic_difficulty_knobs():
    easy = [int(arithmetic_problem(s, steps=1, max_number=5, operations="+").answer) for s in range(50)]
    assert max(easy) <= 10
    hard = arithmetic_problem(3, steps=6, max_number=500, operations="+-*")
    assert hard.question.count(".") >= 7
    with pytest.raises(ValueError, match="steps >= 1"):
        arithmetic_problem(0, steps=0)
    with pytest.raises(ValueError, match="operations"):
        arithmetic_problem(0, operations="+^")
