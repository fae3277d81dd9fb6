"""Checking free-form answers to problems with one correct answer (RISE, arXiv 2407.18219).

Two answer styles, as in the RISE reference code (cmu-mind/RISE):

- **gsm8k** (numeric): the reply's answer is the content of its last `\\boxed{...}`, or, when
  there is none, the last number in the reply. Thousands separators, `$`, `%`, units and
  LaTeX fractions are dropped, and the value is compared *numerically* with the gold answer
  (the number after `####` in a GSM8K solution), exactly (as fractions, so 0.1 + 0.2 issues
  never arise): "1,234.50", "\\$1234.5" and "\\boxed{\\frac{2469}{2}}" are all 1234.5.
  Reward: 1 right, 0 wrong, -1 when the reply has no parseable answer at all.
- **math** (symbolic): the answer is the content of the last `\\boxed{...}` (braces balanced)
  and is compared *as a string* after the normalisation of Hendrycks et al.'s MATH
  evaluation (`normalise_math`). Reward: 1 right, 0 wrong, and 0 when there is no `\\boxed{}`.

`check_answer(style, reply, gold)` returns a `CheckedAnswer`: the normalised answer (the key
that majority votes count; None when nothing could be read), whether it is correct, and the
reward. Gold answers are normalised the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

STYLES = ("gsm8k", "math")
# reward of a reply with no parseable answer, per style (the reference scores GSM8K's -1)
NO_ANSWER_REWARD = {"gsm8k": -1.0, "math": 0.0}


@dataclass(frozen=True, slots=True)
class CheckedAnswer:
    """One reply, checked: `answer` is the normalised answer (None: nothing parseable)."""

    answer: str | None
    correct: bool
    reward: float


# --- \boxed{...} ---------------------------------------------------------------------------
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`), braces balanced; None if none."""
    found = None
    for match in _BOXED.finditer(text or ""):
        start = match.end()
        if start < len(text) and text[start] == "{":
            depth, i = 0, start
            while i < len(text):
                if text[i] == "{" and text[i - 1:i] != "\\":
                    depth += 1
                elif text[i] == "}" and text[i - 1:i] != "\\":
                    depth -= 1
                    if depth == 0:
                        found = text[start + 1:i]
                        break
                i += 1
        else:  # "\boxed 5": the next run of non-space characters
            word = re.match(r"[^\s$]+", text[start:])
            if word and match.group(0).endswith(" "):
                found = word.group(0)
    return found


# --- numbers (gsm8k) -----------------------------------------------------------------------
_MINUS = "\u2212\u2013"  # unicode minus and en dash, as models sometimes write negatives
_FRAC = r"\\[dt]?frac\s*(?:\{\s*(?P<top>-?\d+(?:\.\d+)?)\s*\}|(?P<top1>\d))\s*(?:\{\s*(?P<bottom>\d+(?:\.\d+)?)\s*\}|(?P<bottom1>\d))"
# "2\frac{1}{2}" (a mixed number), "-\frac{1}{4}", "\frac{3}{4}", "\frac34"
_LATEX_FRACTION = re.compile(r"(?:(?<![\w.])(?P<whole>\d+)|(?P<minus>[-" + _MINUS + r"]))?" + _FRAC)
# a number: optional sign (not after a word character or a closing bracket, so "8-3" is 8 and 3),
# digits with optional thousands separators (comma, or a thin/narrow space) and decimals,
# or an integer fraction a/b
_NUMBER = re.compile(
    r"(?<![\w)\]}.])(?P<sign>[-+" + _MINUS + r"])?"
    r"(?P<number>\d{1,3}(?:(?:,|\u2009|\u202f)\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<denominator>\d+)(?![\d.]))?"
)


def _to_fraction(sign: str | None, number: str, denominator: str | None) -> Fraction | None:
    value = Fraction(number.replace(",", "").replace("\u2009", "").replace("\u202f", ""))
    if denominator is not None:
        if int(denominator) == 0:
            return None
        value /= int(denominator)
    return -value if sign and sign in "-" + _MINUS else value


def _plain_fraction(match: re.Match) -> str:
    r"""A LaTeX fraction as plain text the number pattern reads: "2\frac{1}{2}" -> " 5/2 "."""
    top = Fraction(match.group("top") or match.group("top1"))
    bottom = Fraction(match.group("bottom") or match.group("bottom1"))
    if bottom == 0:
        return " "
    value = top / bottom
    if match.group("whole"):
        value += int(match.group("whole"))
    if match.group("minus"):
        value = -value
    return f" {'-' if value < 0 else ''}{abs(value).numerator}/{abs(value).denominator} "


def _numbers(text: str) -> list[Fraction]:
    text = _LATEX_FRACTION.sub(_plain_fraction, text)
    values = []
    for match in _NUMBER.finditer(text):
        value = _to_fraction(match.group("sign"), match.group("number"), match.group("denominator"))
        if value is not None:
            values.append(value)
    return values


def format_fraction(value: Fraction) -> str:
    """Canonical text of a number: "12", "-3.5", "1/3" (a decimal when it terminates)."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    # a terminating decimal, written exactly (never through a float)
    with localcontext() as context:
        context.prec = len(str(value.numerator)) + len(str(value.denominator)) + 2
        decimal = Decimal(value.numerator) / Decimal(value.denominator)
    return format(decimal.normalize(), "f")


def extract_number(reply: str) -> Fraction | None:
    """The gsm8k-style answer of a reply: the last number in its last \\boxed{}, else its last number."""
    boxed = last_boxed(reply or "")
    numbers = _numbers(boxed if boxed is not None else (reply or ""))
    return numbers[-1] if numbers else None


def gsm8k_gold(solution: str) -> str | None:
    """The gold answer of a GSM8K solution: the number after its last `####`, canonical; None if none."""
    if "####" not in (solution or ""):
        return None
    numbers = _numbers(solution.rsplit("####", 1)[1])
    return format_fraction(numbers[0]) if numbers else None


# --- Hendrycks MATH normalisation ----------------------------------------------------------
def _fix_fracs(text: str) -> str:
    r"""\frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}, \frac{3}4 stays (as in Hendrycks)."""
    head, *rest = text.split("\\frac")
    out = [head]
    for part in rest:
        out.append("\\frac")
        if part.startswith("{"):
            out.append(part)
            continue
        if len(part) < 2:
            return text  # "\frac" followed by too little to repair
        first, second, tail = part[0], part[1], part[2:]
        out.append(f"{{{first}}}{second}{tail}" if second == "{" else f"{{{first}}}{{{second}}}{tail}")
    return "".join(out)


def _fix_slash(text: str) -> str:
    r"""An integer ratio "a/b" -> \frac{a}{b}."""
    match = re.fullmatch(r"(-?\d+)/(\d+)", text)
    if not match or any(str(int(part)) != part for part in match.groups()):  # "01/2" stays as written
        return text
    return f"\\frac{{{match.group(1)}}}{{{match.group(2)}}}"


def _fix_sqrt(text: str) -> str:
    r"""\sqrt3 -> \sqrt{3}."""
    return re.sub(r"\\sqrt([^{\\])", r"\\sqrt{\1}", text)


def normalise_math(answer: str) -> str:
    r"""Hendrycks et al.'s MATH answer normalisation (the RISE reference's `_strip_string`).

    In order: drop line breaks and `\!`; `\\` -> `\`; tfrac/dfrac -> frac; drop `\left`/`\right`,
    degree marks and `\$`; drop a trailing unit (everything from the first `\text{ ` or
    `\mbox{ `, a brace and a space); drop `\%` (and a bare `%`); " ." -> " 0.", "{." -> "{0.",
    a leading "." -> "0."; "k = 5" -> "5" when the left side has at most two characters;
    \sqrt3 -> \sqrt{3}; drop spaces; \frac12 -> \frac{1}{2}; "0.5" -> \frac{1}{2}; an integer
    "a/b" -> \frac{a}{b}. The result is compared exactly.
    """
    text = answer.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "")
    text = text.replace("\\$", "")
    for unit in ("\\text{ ", "\\mbox{ "):
        if unit in text:
            text = text.split(unit, 1)[0]
    text = text.replace("\\%", "").replace("%", "")
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text.startswith("."):
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    text = _fix_sqrt(text).replace(" ", "")
    text = _fix_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_slash(text)


def math_gold(solution: str) -> str | None:
    """The gold answer of a MATH solution: its last \\boxed{} content, normalised; None if none."""
    boxed = last_boxed(solution or "")
    return None if boxed is None else normalise_math(boxed)


# --- checking ------------------------------------------------------------------------------
def normalise_gold(style: str, gold: str) -> str:
    """A gold answer (already extracted: "1,234", "\\frac{1}{2}") in the form replies are compared in."""
    if style == "gsm8k":
        numbers = _numbers(str(gold))
        if not numbers:
            raise ValueError(f"gsm8k gold answer {gold!r} is not a number")
        return format_fraction(numbers[-1])
    if style == "math":
        return normalise_math(str(gold))
    raise ValueError(f"unknown answer style {style!r} (styles: {', '.join(STYLES)})")


def read_answer(style: str, reply: str) -> str | None:
    """The normalised answer of a reply (what a majority vote counts), or None when there is none."""
    if style == "gsm8k":
        value = extract_number(reply)
        return None if value is None else format_fraction(value)
    if style == "math":
        boxed = last_boxed(reply or "")
        answer = None if boxed is None else normalise_math(boxed)
        return answer or None  # an empty box is no answer
    raise ValueError(f"unknown answer style {style!r} (styles: {', '.join(STYLES)})")


def check_answer(style: str, reply: str, gold: str) -> CheckedAnswer:
    """Check `reply` against `gold` (a normalised gold answer, see `normalise_gold`)."""
    answer = read_answer(style, reply)
    if answer is None:
        return CheckedAnswer(None, False, NO_ANSWER_REWARD[style])
    correct = answer == gold  # gsm8k: canonical numbers, so equal text is equal value
    return CheckedAnswer(answer, correct, 1.0 if correct else 0.0)
