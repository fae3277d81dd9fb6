"""Reading a model's decision: tolerant about form, strict about meaning.

Tolerated: case, whitespace, markdown (`**ANSWER:** blue`, code fences, headings, quotes),
the answer on the line after `ANSWER:`, a trailing explanation after the name ("blue - it
has the best mean"), a JSON object (`{"answer": "blue"}`, `{"probabilities": {...}}`),
`<think>...</think>` blocks (also an unopened `</think>`), a provider's separate reasoning
field, and a bare option name when reasoning is off. Rejected, with a reason that goes into
the correction message: no answer, an unknown or out-of-range option, several different
answers, a distribution where one option is required, and a probability vector with the wrong
length, a negative or non-finite entry, or a sum more than `tolerance` away from 1.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass

from scenarios import RegretError
from scenarios.framing import Framing

_THINK = re.compile(r"<(think|thinking|reasoning)>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
_THINK_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
# "ANSWER: x", "**ANSWER:** x", "## Final answer: x", "> Answer = x", "ANSWER - x" is not accepted
_ANSWER = re.compile(r"(?:^|(?<=[\s*#>_`(\[|]))(final[ \t]+)?(answer)[ \t]*[*_`]*[ \t]*[:=][ \t]*[*_`]*(.*)$",
                     re.IGNORECASE | re.MULTILINE)
_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"^[#]?\s*(\d+)$")
_ANSWER_KEYS = ("answer", "final_answer", "action", "choice", "decision", "option", "selection", "arm")
_POLICY_KEYS = ("probabilities", "policy", "distribution", "weights", "probs")
_REASONING_KEYS = ("reasoning", "thought", "thoughts", "explanation", "rationale")
_SPLITTERS = re.compile(r"\s+[-\u2013\u2014]\s+|\s*\(|,|;|\s+because\s+|\s+since\s+|\s+as\s+it\s+|\s+which\s+|:\s")
_BOTH = re.compile(r"\s+(?:or|and|/|then)\s+|\s*/\s*", re.IGNORECASE)
_LEADING_VERB = re.compile(r"^(?:i\s+(?:will|would|'ll)?\s*)?(?:choose|pick|select|go\s+with|play|press|pull|take)\s+",
                           re.IGNORECASE)


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
    if opened:  # never closed: the model was cut off while thinking
        parts.append(text[opened.end():].strip())
        text = text[: opened.start()]
    return "\n\n".join(p for p in parts if p), text.strip()


def parse_answer(text: str | None, framing: Framing, n_options: int, accepts_policy: bool = False,
                 provider_reasoning: str | None = None, tolerance: float = 1e-3) -> ParsedAnswer:
    """Read one decision from a model's output. Never raises: an invalid answer has `error` set."""
    reasoning, visible = split_reasoning(text or "", provider_reasoning)
    try:
        if not visible:
            raise InvalidAnswer("the reply is empty" if not reasoning else "the reply has reasoning but no answer")
        action, policy, before = _decide(visible, framing, n_options, accepts_policy, tolerance)
    except InvalidAnswer as exc:
        return ParsedAnswer(reasoning=_join(reasoning, visible), error=str(exc))
    return ParsedAnswer(action, policy, _join(reasoning, before))


def _join(*parts: str) -> str:
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _decide(visible: str, framing: Framing, n: int, accepts_policy: bool, tolerance: float):
    matches = list(_ANSWER.finditer(visible))
    exact = [m for m in matches if m.group(2) == "ANSWER"]
    if exact:
        chosen = exact
    elif matches:
        chosen = [matches[-1]]  # a lower-case "answer:" may also occur in the reasoning: trust the last
    else:
        chosen = []
    if chosen:
        meanings, errors = [], []
        for match in chosen:
            value = match.group(3)
            if not _clean(value):  # "ANSWER:" with the value on the next non-empty line
                rest = [line for line in visible[match.end():].splitlines() if _clean(line)]
                value = rest[0] if rest else ""
            if re.fullmatch(r"\s*<[^>]*>\s*", value):  # the instructions' template echoed back
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
        return action, policy, visible[: chosen[0].start()].rstrip().rstrip("*#>_`").rstrip()
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
        value = value.strip().strip("*_`\"'").strip()
        value = re.sub(r"[.!?]+$", "", value).strip()
    return value


def _interpret(value: str, framing: Framing, n: int, accepts_policy: bool, tolerance: float):
    """-> (action, None) or (None, policy tuple)."""
    value = _clean(value)
    if not value:
        raise InvalidAnswer("the answer is empty")
    if value[0] in "{[":
        data = _loads(value)
        if data is None:
            raise InvalidAnswer(f"the answer {value[:60]!r} is not valid JSON")
        if isinstance(data, dict):
            return _from_mapping(data, framing, n, accepts_policy, tolerance)
        if isinstance(data, list):
            if len(data) == 1 and isinstance(data[0], str):
                return _interpret(data[0], framing, n, accepts_policy, tolerance)
            return None, _vector(data, n, accepts_policy, tolerance)
        return _interpret(str(data), framing, n, accepts_policy, tolerance)
    index = _option(value, framing, n)
    if index is not None:
        return index, None
    # several options named: "blue or green", "blue and red"
    pieces = [p for p in _BOTH.split(value) if p.strip()]
    if len(pieces) > 1 and sum(_option(p, framing, n) is not None for p in pieces) > 1:
        raise InvalidAnswer(f"the answer {value[:60]!r} names several options; choose exactly one")
    # a name followed by an explanation: "blue - it has the best mean", "blue (best so far)"
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
    try:  # single quotes, trailing commas: a Python literal
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
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
