"""Reading a model's decision: tolerant about form, strict about meaning.

Form (all tolerated): case, whitespace, markdown (`**ANSWER:** blue`, headings, quotes, code
fences, list markers), typographic quotes, emoji, zero-width characters and full-width
punctuation (the text is NFKC-normalised for reading only: `raw_output` stays exact), the
answer on the line(s) after `ANSWER:` (a fenced or pretty-printed JSON block, a list of
lines), a trailing explanation ("blue. It has the best mean", "blue - it ...", "blue (...)",
"blue, because ..."), `<think>` blocks (closed, unopened, or never closed with the answer as
the last line), a provider's separate reasoning field, and a bare name when reasoning is off.

Where the answer is: every `ANSWER:` line, `<answer>...</answer>`, `\boxed{...}` (with
`\text{}`), "Final Answer: x", "The final answer is x" and a "### Final Answer" heading followed
by the answer. They must all mean the same decision; only when there is none is the last
lower-case "answer: x" used, then a JSON object, then a short bare reply.

Meaning: an option name or its 1-based position; a distribution (experts) as a JSON list or
object, a tuple, space- or comma-separated numbers, percentages, fractions, or name-probability
pairs ("blue: 0.5, green: 0.3", "Golden Dragon - 0.6", "blue (0.5)", "60% blue"). Rejected,
with a reason that goes into the correction message, never guessed: no answer, an unknown or
out-of-range option, several different options (",", ";", "or", "and", "/", or several answer
markers that disagree), a distribution where one option is required, and a probability vector
with the wrong length, a negative or non-finite entry, or a sum more than `tolerance` from 1.
"""

from __future__ import annotations

import ast
import json
import math
import re
import unicodedata
from dataclasses import dataclass

from scenarios import RegretError
from scenarios.framing import Framing

_THINK = re.compile(r"<(think|thinking|reasoning)>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
_THINK_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
# "ANSWER: x", "**ANSWER:** x", "## Final answer: x", "> Answer = x"; "ANSWER - x" is not accepted
_ANSWER = re.compile(r"(?:^|(?<=[\s*#>_`(\[|]))(final[ \t]+)?(answer)[ \t]*[*_`]*[ \t]*[:=][ \t]*[*_`]*(.*)$",
                     re.IGNORECASE | re.MULTILINE)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_FINAL_IS = re.compile(r"\bfinal answer is\b[ \t]*[*_`]*:?[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]*[*_]*[ \t]*final[ \t]+answer[ \t]*[*_]*[ \t]*:?[ \t]*[*_]*[ \t]*$",
                      re.IGNORECASE | re.MULTILINE)
_BOXED = re.compile(r"\\boxed\s*\{")
_TEXT_MACRO = re.compile(r"\\(?:text|textbf|mathrm|mathbf|texttt)\s*\{([^{}]*)\}")
_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"^[#]?\s*(\d+)$")
_ANSWER_KEYS = ("answer", "final_answer", "action", "choice", "decision", "option", "selection", "arm")
_POLICY_KEYS = ("probabilities", "policy", "distribution", "weights", "probs")
_REASONING_KEYS = ("reasoning", "thought", "thoughts", "explanation", "rationale")
_SPLITTERS = re.compile(r"\s+[-\u2013\u2014]\s+|\s*\(|,|;|\s+because\s+|\s+since\s+|\s+as\s+it\s+|\s+which\s+|:\s"
                        r"|[.!?]\s+")
_BOTH = re.compile(r"\s+(?:or|and|then)\s+|\s*/\s*|\s*[,;]\s*", re.IGNORECASE)
_LEADING_VERB = re.compile(r"^(?:i\s*(?:will|would|'ll|'d)?\s*)?(?:choose|pick|select|go\s+with|play|press|pull|take)\s+",
                           re.IGNORECASE)
# one probability: 0.5, .5, 1, 50%, 1/3
_PROB = r"(?:\d+(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+(?:\.\d+)?)?\s*%?"
_PROB_TOKEN = re.compile(rf"^{_PROB}$")
_PAIR = re.compile(rf"^(?P<name>.+?)\s*(?::|=|\(|[-\u2013\u2014]|\bat\b|\bwith\b)\s*(?P<p>{_PROB})\s*\)?$", re.IGNORECASE)
_PAIR_REVERSED = re.compile(rf"^(?P<p>{_PROB})\s+(?:(?:on|to|for)\s+)?(?P<name>.+)$", re.IGNORECASE)
_ITEM_SEPARATOR = re.compile(r"\s*[,;\n]\s*|\s+and\s+", re.IGNORECASE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022+]|\d+[.)])\s+")
# invisible characters and pictographs are noise in an answer line; NFKC then maps full-width
# forms (the "：" colon) and no-break spaces to their plain forms
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\ufe0e\ufe0f\u00ad"), None)
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                         "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2044": "/"})


class InvalidAnswer(RegretError, ValueError):
    """The output does not give one valid decision; the message says why."""


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    action: int | None = None
    policy: tuple[float, ...] | None = None
    reasoning: str = ""
    error: str | None = None  # None when the answer is valid

    @property
    def ok(self) -> bool:
        return self.error is None


def normalise(text: str) -> str:
    """The text as the parser reads it: no invisible characters or pictographs, NFKC, plain quotes."""
    text = text.translate(_INVISIBLE)
    if not text.isascii():
        text = "".join(" " if unicodedata.category(c) in ("So", "Cs") or 0x1F3FB <= ord(c) <= 0x1F3FF else c
                       for c in text)
        text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return text


def split_reasoning(text: str, provider_reasoning: str | None = None) -> tuple[str, str]:
    """(reasoning, visible text): `<think>` blocks and the provider's reasoning field go to reasoning."""
    text = text or ""
    parts = [provider_reasoning.strip()] if provider_reasoning and provider_reasoning.strip() else []
    for match in _THINK.finditer(text):
        parts.append(match.group(2).strip())
    text = _THINK.sub("", text)
    close = _THINK_CLOSE.search(text)
    if close:  # "reasoning...</think> answer": the opening tag was in the prompt template
        parts.append(text[: close.start()].strip())
        text = text[close.end():]
    opened = _THINK_OPEN.search(text)
    if opened:  # never closed: cut off while thinking, or it ended its thinking with the answer line
        inner = text[opened.end():].rstrip()
        lines = inner.splitlines()
        last = lines[-1] if lines else ""
        if any(m.group(2) == "ANSWER" for m in _ANSWER.finditer(last)):
            parts.append("\n".join(lines[:-1]).strip())
            text = text[: opened.start()] + "\n" + last
        else:
            parts.append(inner.strip())
            text = text[: opened.start()]
    return "\n\n".join(p for p in parts if p), text.strip()


def parse_answer(text: str | None, framing: Framing, n_options: int, accepts_policy: bool = False,
                 provider_reasoning: str | None = None, tolerance: float = 1e-3) -> ParsedAnswer:
    """Read one decision from a model's output. Never raises: an invalid answer has `error` set."""
    reasoning, visible = split_reasoning(normalise(text or ""), provider_reasoning)
    try:
        if not visible:
            raise InvalidAnswer("the reply is empty" if not reasoning else "the reply has reasoning but no answer")
        action, policy, before = _decide(visible, framing, n_options, accepts_policy, tolerance)
    except InvalidAnswer as exc:
        return ParsedAnswer(reasoning=_join(reasoning, visible), error=str(exc))
    except (ValueError, TypeError, IndexError, KeyError, RecursionError, OverflowError) as exc:  # never raise
        return ParsedAnswer(reasoning=_join(reasoning, visible), error=f"the answer could not be read ({exc})")
    return ParsedAnswer(action, policy, _join(reasoning, before))


def parse_structured(text: str | None, framing: Framing, n_options: int, accepts_policy: bool = False,
                     provider_reasoning: str | None = None, tolerance: float = 1e-3,
                     truncated: bool = False) -> ParsedAnswer:
    """Read a structured answer (answer_format json or tool): the JSON object the schema asked for.

    `{"reasoning": ..., "answer": "<name>"}` or `{"reasoning": ..., "probabilities": {...}}`. A
    reply that is not one JSON object (a provider that ignored the schema) is read as free text.
    """
    text = text or ""
    reasoning = provider_reasoning.strip() if provider_reasoning else ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if truncated and not text.rstrip().endswith("}"):
            return ParsedAnswer(reasoning=_join(reasoning, text),
                                error="the reply was cut off (max_tokens) before the JSON object was complete")
        return parse_answer(text, framing, n_options, accepts_policy, provider_reasoning, tolerance)
    extra = next((str(v) for k, v in data.items() if str(k).lower() in _REASONING_KEYS), "")
    try:
        action, policy = _from_mapping(data, framing, n_options, accepts_policy, tolerance)
    except InvalidAnswer as exc:
        return ParsedAnswer(reasoning=_join(reasoning, extra), error=str(exc))
    return ParsedAnswer(action, policy, _join(reasoning, extra))


def _join(*parts: str) -> str:
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _balanced(text: str, start: int, opening: str, closing: str) -> int | None:
    """Index just past the bracket closing the one at `start`, or None."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == opening:
            depth += 1
        elif text[i] == closing:
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _boxed(visible: str) -> list[tuple[int, str]]:
    found = []
    for match in _BOXED.finditer(visible):
        end = _balanced(visible, match.end() - 1, "{", "}")
        if end is not None:
            inner = visible[match.end(): end - 1]
            while _TEXT_MACRO.search(inner):
                inner = _TEXT_MACRO.sub(r"\1", inner)
            found.append((match.start(), inner))
    return found


def _value_after(visible: str, value: str, end: int) -> str:
    """The answer's full text: the rest of its line, or the block after an empty `ANSWER:`."""
    stripped = value.strip()
    if stripped and stripped[0] in "{[" and _balanced(stripped, 0, stripped[0], "}" if stripped[0] == "{" else "]") is None:
        block = value + visible[end:]  # a JSON object pretty-printed over several lines
        start = block.index(stripped[0])
        close = _balanced(block, start, stripped[0], "}" if stripped[0] == "{" else "]")
        return block[start:close] if close else stripped
    if _clean(value):
        return value
    rest = visible[end:].lstrip("\n")
    fence = _FENCE.match(rest.lstrip())
    if fence:
        return fence.group(1)
    lines = [line for line in rest.splitlines() if _clean(line)]
    if not lines:
        return ""
    if lines[0].lstrip()[:1] in ("{", "["):
        return _value_after(visible, lines[0], visible.index(lines[0], end) + len(lines[0]))
    if _LIST_MARKER.match(lines[0]):  # a distribution written as a list, one line per option
        items = []
        for line in lines:
            if not _LIST_MARKER.match(line):
                break
            items.append(_LIST_MARKER.sub("", line))
        return ", ".join(items) if len(items) > 1 else items[0]
    return lines[0]


def _markers(visible: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(strong, weak) answer locations: (position, value text)."""
    strong: list[tuple[int, str]] = []
    weak: list[tuple[int, str]] = []
    for match in _ANSWER.finditer(visible):
        value = _value_after(visible, match.group(3), match.end())
        (strong if match.group(2) == "ANSWER" or match.group(1) else weak).append((match.start(), value))
    strong += [(m.start(), m.group(1)) for m in _ANSWER_TAG.finditer(visible)]
    strong += _boxed(visible)
    strong += [(m.start(), _value_after(visible, m.group(1), m.end())) for m in _FINAL_IS.finditer(visible)]
    strong += [(m.start(), _value_after(visible, "", m.end())) for m in _HEADING.finditer(visible)]
    return sorted(strong), weak


def _is_template(value: str, framing: Framing, n: int) -> bool:
    """`<button name>`: the instructions' placeholder echoed back (but `<red>` is an answer)."""
    match = re.fullmatch(r"\s*[*_`]*<([^<>]*)>[*_`]*\s*", value)
    return bool(match) and _option(match.group(1), framing, n) is None


def _decide(visible: str, framing: Framing, n: int, accepts_policy: bool, tolerance: float):
    strong, weak = _markers(visible)
    chosen = strong or weak[-1:]
    if chosen:
        meanings, errors = [], []
        for _, value in chosen:
            if _is_template(value, framing, n):
                continue
            try:
                meanings.append(_interpret(value, framing, n, accepts_policy, tolerance))
            except InvalidAnswer as exc:
                errors.append(str(exc))
        if errors:
            raise InvalidAnswer(errors[-1])
        if not meanings:
            raise InvalidAnswer("the answer line only repeats the template; give a real option name")
        if len(set(meanings)) > 1:
            raise InvalidAnswer(f"several different answers ({len(set(meanings))}); give exactly one")
        action, policy = meanings[0]
        first = chosen[0][0]
        return action, policy, visible[:first].rstrip().rstrip("*#>_`-").rstrip()
    obj = _json_object(visible)
    if obj is not None:
        action, policy = _from_mapping(obj, framing, n, accepts_policy, tolerance)
        extra = next((str(obj[k]) for k in obj if str(k).lower() in _REASONING_KEYS), "")
        return action, policy, extra
    single = _clean(visible)
    if "\n" not in single and len(single) <= 80:  # a bare name or vector: reasoning off
        return (*_interpret(single, framing, n, accepts_policy, tolerance), "")
    raise InvalidAnswer("no final line of the form 'ANSWER: <name>' was found")


def _clean(value: str) -> str:
    value = value.strip()
    previous = None
    while value != previous:
        previous = value
        value = value.strip().strip("*_`\"'$").strip()
        value = re.sub(r"[.!?]+$", "", value).strip()
    return value


def _interpret(value: str, framing: Framing, n: int, accepts_policy: bool, tolerance: float):
    """-> (action, None) or (None, policy tuple)."""
    value = _clean(value)
    if not value:
        raise InvalidAnswer("the answer is empty")
    if value[0] in "{[(":
        data = _loads(value)
        if isinstance(data, dict):
            return _from_mapping(data, framing, n, accepts_policy, tolerance)
        if isinstance(data, (list, tuple)):
            if len(data) == 1 and isinstance(data[0], str):
                return _interpret(data[0], framing, n, accepts_policy, tolerance)
            return None, _vector(list(data), n, accepts_policy, tolerance)
        closing = {"{": "}", "[": "]", "(": ")"}[value[0]]
        if value.endswith(closing):  # [blue], [50%, 30%, 20%], [1/2, 1/3, 1/6]
            inner = value[1:-1].strip()
            numbers = _numbers(inner)
            if numbers is not None:
                return None, _vector(numbers, n, accepts_policy, tolerance)
            if value[0] != "{" and inner and _option(inner, framing, n) is not None:
                return _option(inner, framing, n), None
        if value[0] in "{[" and data is None:
            raise InvalidAnswer(f"the answer {value[:60]!r} is not valid JSON")
    bracketed = re.fullmatch(r"<([^<>]+)>", value)  # "<red>": the template's brackets kept
    index = _option(bracketed.group(1) if bracketed else value, framing, n)
    if index is not None:
        return index, None
    numbers = _numbers(value)
    if numbers is not None and len(numbers) > 1:
        whole = [x for x in numbers if float(x).is_integer() and 1 <= x <= n]
        if len(whole) == len(numbers) and abs(sum(numbers) - 1.0) > tolerance:
            raise InvalidAnswer(f"the answer {value[:60]!r} names several options; choose exactly one")
        return None, _vector(numbers, n, accepts_policy, tolerance)
    pairs = _pairs(value, framing, n)
    if pairs is not None:
        return None, _named_vector(pairs, framing, n, accepts_policy, tolerance)
    # several options named: "blue or green", "blue and red", "yellow, red", "2; 3"
    pieces = [p for p in _BOTH.split(value) if p.strip()]
    if len(pieces) > 1 and sum(_option(p, framing, n) is not None for p in pieces) > 1:
        raise InvalidAnswer(f"the answer {value[:60]!r} names several options; choose exactly one")
    # a name followed by an explanation: "blue - it has the best mean", "blue (best so far)", "blue. It ..."
    head = _SPLITTERS.split(value, maxsplit=1)[0]
    if head != value:
        index = _option(head, framing, n)
        if index is not None:
            return index, None
    number = _NUMBER.match(value)
    if number:
        raise InvalidAnswer(f"option {number.group(1)} is out of range: there are {n} {framing.option_plural} "
                            f"(1..{n}, or their names)")
    raise InvalidAnswer(f"{value[:60]!r} is not one of the {n} {framing.option_plural} "
                        f"({', '.join(framing.option_names(min(n, 8)))}{', ...' if n > 8 else ''})")


def _probability(token: str) -> float | None:
    token = token.strip()
    if not _PROB_TOKEN.match(token):
        return None
    percent = token.endswith("%")
    token = token.rstrip("%").strip()
    if "/" in token:
        top, bottom = (float(x) for x in token.split("/"))
        if bottom == 0:
            return None
        value = top / bottom
    else:
        value = float(token)
    return value / 100 if percent else value


def _numbers(value: str) -> list[float] | None:
    """Numbers separated by commas, semicolons or spaces (0.5 0.3 0.2; 50%, 50%; 1/2, 1/2), else None."""
    tokens = [t for t in re.split(r"\s*[,;]\s*|\s+(?![/%])(?<![/])", value.strip()) if t]
    if not tokens:
        return None
    numbers = [_probability(t) for t in tokens]
    return None if any(x is None for x in numbers) else numbers


def _pairs(value: str, framing: Framing, n: int) -> dict[str, float] | None:
    """Name-probability pairs ("blue: 0.5, green: 0.5", "Golden Dragon - 0.6", "60% blue"), else None.

    Returned only when every item is a pair; an item naming no shown option raises (it was meant
    as a distribution, but over something else)."""
    items = [_LIST_MARKER.sub("", item).strip() for item in _ITEM_SEPARATOR.split(value) if item.strip()]
    pairs: list[tuple[str, float]] = []
    for item in items:
        match = _PAIR.match(item) or _PAIR_REVERSED.match(item)
        if not match:
            return None
        pairs.append((_clean(match.group("name")), _probability(match.group("p"))))
    if not pairs:
        return None
    result: dict[str, float] = {}
    for name, p in pairs:
        if _option(name, framing, n) is None:
            raise InvalidAnswer(f"{name[:40]!r} in the distribution is not one of the {n} {framing.option_plural}")
        if name in result:
            raise InvalidAnswer(f"{name!r} appears twice in the distribution")
        result[name] = p
    return result


def _option(text: str, framing: Framing, n: int) -> int | None:
    text = _clean(text)
    index = framing.option_index(text, n)
    if index is None:
        stripped = _LEADING_VERB.sub("", text)
        if stripped != text:
            index = framing.option_index(stripped, n)
    return index


def _loads(text: str):
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:  # single quotes, trailing commas, tuples: a Python literal
        return ast.literal_eval(text)
    except Exception:  # literal_eval raises many types (TypeError for a set of dicts, ...)
        return None


def _json_object(text: str) -> dict | None:
    candidates = [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start: end + 1])
    for candidate in candidates:
        data = _loads(candidate)
        if isinstance(data, dict):
            return data
    return None


def _from_mapping(data: dict, framing: Framing, n: int, accepts_policy: bool, tolerance: float):
    lowered = {str(k).lower(): v for k, v in data.items()}
    for key in _POLICY_KEYS:
        if key in lowered:
            value = lowered[key]
            if isinstance(value, dict):
                return None, _named_vector(value, framing, n, accepts_policy, tolerance)
            if isinstance(value, list):
                return None, _vector(value, n, accepts_policy, tolerance)
            raise InvalidAnswer(f"'{key}' must be an object or a list of probabilities")
    for key in _ANSWER_KEYS:
        if key in lowered:
            value = lowered[key]
            if isinstance(value, dict):
                return _from_mapping(value, framing, n, accepts_policy, tolerance)
            if isinstance(value, list):
                return None, _vector(value, n, accepts_policy, tolerance)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(int(value)) if float(value).is_integer() else str(value)
            return _interpret(str(value), framing, n, accepts_policy, tolerance)
    if data and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()):
        return None, _named_vector(data, framing, n, accepts_policy, tolerance)
    raise InvalidAnswer("the JSON object has no 'answer' (or a distribution over the options)")


def _named_vector(data: dict, framing: Framing, n: int, accepts_policy: bool, tolerance: float):
    vector = [0.0] * n
    for key, value in data.items():
        index = framing.option_index(str(key), n)
        if index is None:
            raise InvalidAnswer(f"{str(key)[:40]!r} in the distribution is not one of the {n} {framing.option_plural}")
        if vector[index]:
            raise InvalidAnswer(f"{framing.option_name(index)!r} appears twice in the distribution")
        vector[index] = value
    return _vector(vector, n, accepts_policy, tolerance)


def _vector(values: list, n: int, accepts_policy: bool, tolerance: float) -> tuple[float, ...]:
    if not accepts_policy:
        raise InvalidAnswer("a probability distribution is not allowed here; choose exactly one option")
    if len(values) != n:
        raise InvalidAnswer(f"the probability list has {len(values)} entries; it needs {n}, one per option")
    try:
        probs = [float(v) for v in values]
    except (TypeError, ValueError):
        raise InvalidAnswer("the probabilities must be numbers") from None
    if any(not math.isfinite(p) for p in probs):
        raise InvalidAnswer("the probabilities must be finite numbers")
    if any(p < 0 for p in probs):
        raise InvalidAnswer("a probability is negative")
    total = sum(probs)
    if abs(total - 1.0) > tolerance:
        raise InvalidAnswer(f"the probabilities sum to {total:.4g}, not 1")
    return tuple(p / total for p in probs)
