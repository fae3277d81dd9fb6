"""Problem sources for self-correction tasks: a seeded arithmetic generator and GSM8K / MATH files.

- `arithmetic_problem(seed, steps, max_number, operations)`: a word problem built from a
  starting quantity and `steps` operations (+, -, x, /; every intermediate value a whole,
  non-negative number), reproducible from its seed. Difficulty knobs: `steps` (how many
  operations are chained) and `max_number` (the size of the numbers).
- `load_gsm8k(path)`: JSONL, one `{"question": ..., "answer": "... #### N"}` per line.
- `load_math(path)`: JSONL, one `{"problem": ..., "solution": "... \\boxed{...} ..."}` per line.

A malformed file raises `ProblemFileError` naming the file, the line and the problem. Files
are read once per (path, size, modification time): scenario instances are built per episode.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios._answers import gsm8k_gold, last_boxed, math_gold, normalise_gold
from scenarios._base import ScenarioError

OPERATIONS = "+-*/"


class ProblemFileError(ScenarioError):
    """A problem file that cannot be read; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Problem:
    """One problem: the question shown, its normalised gold answer and how answers are checked."""

    question: str
    answer: str  # normalised gold answer (scenarios._answers.normalise_gold)
    style: str  # "gsm8k" (numeric) or "math" (Hendrycks-normalised string)
    solution: str = ""  # a worked reference solution, when the source has one
    source: str = ""  # "FILE:LINE", or "arithmetic"


# --- the arithmetic generator ------------------------------------------------------------------
_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira", "Leo",
          "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tess")
_PRONOUNS = {"Ava": "She", "Ben": "He", "Chloe": "She", "Dev": "He", "Elena": "She", "Farid": "He",
             "Grace": "She", "Hiro": "He", "Ines": "She", "Jamal": "He", "Kira": "She", "Leo": "He",
             "Maya": "She", "Noah": "He", "Olga": "She", "Priya": "She", "Quinn": "They", "Rosa": "She",
             "Sami": "They", "Tess": "She"}
_ITEMS = ("apples", "marbles", "stickers", "coins", "books", "pencils", "shells", "stamps", "cards", "beads")


def _verb(pronoun: str, singular: str, plural: str) -> str:
    return plural if pronoun == "They" else singular


def arithmetic_problem(seed: int, steps: int = 2, max_number: int = 20, operations: str = "+-*") -> Problem:
    """A seeded word problem: a starting amount, then `steps` operations, asking for the final amount.

    Additions and subtractions use numbers 1..max_number; multiplications a factor 2..4;
    divisions an exact divisor 2..5 ("splits them into k equal piles and keeps one"). A subtraction never
    goes below zero and a division is only drawn when an exact divisor exists (otherwise an
    addition is used), so every intermediate amount is a whole, non-negative number.
    """
    if steps < 1:
        raise ScenarioError(f"arithmetic problems need steps >= 1, got {steps}")
    if max_number < 2:
        raise ScenarioError(f"arithmetic problems need max_number >= 2, got {max_number}")
    if not operations or set(operations) - set(OPERATIONS):
        raise ScenarioError(f"operations must be drawn from {OPERATIONS!r}, got {operations!r}")
    rng = np.random.default_rng([int(seed), 0xA817])
    name = _NAMES[rng.integers(len(_NAMES))]
    items = _ITEMS[rng.integers(len(_ITEMS))]
    pronoun = _PRONOUNS[name]
    has = _verb(pronoun, "has", "have")
    amount = int(rng.integers(1, max_number + 1))
    sentences = [f"{name} has {amount} {items}."]
    for _ in range(steps):
        op = operations[rng.integers(len(operations))]
        divisors = [d for d in range(2, 6) if amount % d == 0 and amount > 0]
        if op == "-" and amount == 0 or op == "/" and not divisors:
            op = "+"
        if op == "+":
            n = int(rng.integers(1, max_number + 1))
            amount += n
            sentences.append(f"{pronoun} {_verb(pronoun, 'gets', 'get')} {n} more {items}.")
        elif op == "-":
            n = int(rng.integers(1, min(max_number, amount) + 1))
            amount -= n
            sentences.append(f"{pronoun} {_verb(pronoun, 'gives', 'give')} {n} {items} away.")
        elif op == "*":
            k = int(rng.integers(2, 5))
            amount *= k
            word = {2: "doubles", 3: "triples", 4: "quadruples"}[k]
            sentences.append(f"Then the number of {items} {pronoun.lower()} {has} {word}.")
        else:
            k = int(divisors[rng.integers(len(divisors))])
            amount //= k
            sentences.append(f"{pronoun} {_verb(pronoun, 'splits', 'split')} the {items} into {k} equal piles "
                             f"and {_verb(pronoun, 'keeps', 'keep')} one pile.")
    sentences.append(f"How many {items} does {name} have now?")
    return Problem(" ".join(sentences), str(amount), "gsm8k", f"#### {amount}", "arithmetic")


# --- files ---------------------------------------------------------------------------------
def _records(path: Path, required: tuple[str, str]) -> list[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemFileError(f"problem file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProblemFileError(f"cannot read problem file {path}: {exc}") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ProblemFileError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ProblemFileError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        for key in required:
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise ProblemFileError(f"{path}:{number}: needs a non-empty string {key!r} "
                                       f"(keys: {', '.join(sorted(record)) or 'none'})")
        records.append((number, record))
    if not records:
        raise ProblemFileError(f"problem file {path} holds no problems")
    return records


@functools.lru_cache(maxsize=16)
def _load(path: str, size: int, mtime_ns: int, style: str) -> tuple[Problem, ...]:
    file = Path(path)
    problems = []
    if style == "gsm8k":
        for number, record in _records(file, ("question", "answer")):
            gold = gsm8k_gold(record["answer"])
            if gold is None:
                tail = record["answer"].rsplit("####", 1)[-1].strip()[:40] if "####" in record["answer"] else ""
                what = f"'#### {tail}' is not a number" if "####" in record["answer"] else "has no '#### N' line"
                raise ProblemFileError(f"{path}:{number}: the answer {what}")
            problems.append(Problem(record["question"], gold, "gsm8k", record["answer"], f"{path}:{number}"))
    else:
        for number, record in _records(file, ("problem", "solution")):
            if last_boxed(record["solution"]) is None:
                raise ProblemFileError(f"{path}:{number}: the solution has no \\boxed{{...}} answer")
            problems.append(Problem(record["problem"], math_gold(record["solution"]), "math", record["solution"],
                                    f"{path}:{number}"))
    return tuple(problems)


def load_problems(path: str | os.PathLike, style: str) -> tuple[Problem, ...]:
    """Every problem of a GSM8K (`style="gsm8k"`) or MATH (`style="math"`) JSONL file, in file order."""
    if style not in ("gsm8k", "math"):
        raise ScenarioError(f"unknown problem file style {style!r} (styles: gsm8k, math)")
    file = Path(path).expanduser()
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise ProblemFileError(f"problem file {file} does not exist") from None
    return _load(str(file.resolve()), stat.st_size, stat.st_mtime_ns, style)


def load_gsm8k(path: str | os.PathLike) -> tuple[Problem, ...]:
    return load_problems(path, "gsm8k")


def load_math(path: str | os.PathLike) -> tuple[Problem, ...]:
    return load_problems(path, "math")


def gold_of(style: str, answer: str) -> str:
    """A gold answer given directly (not from a file), normalised for comparison."""
    try:
        return normalise_gold(style, answer)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
