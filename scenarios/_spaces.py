"""Action spaces: what a decision is, and how each kind is parsed, stored, rendered and scored.

A scenario's `action_space` is one of:

- `Discrete(n)`: choose one of n options (bandits). Stored in the `action` column.
- `Simplex(n)`: one option, or a probability vector over the n options (experts). A vector is
  stored as JSON in the `policy` column.
- `FreeForm(kind)`: an answer the scenario itself checks (`kind` says what it is: "number",
  "string", "path"). Stored as text in the `answer` column; the scenario's `check` decides.

Each space says:

- how a model's reply is parsed: `parse(text, framing)` (the LLM agent asks the episode's space);
- how a decision is stored: a chosen option in the `action` column, a probability vector as
  JSON in `policy`, a free-form answer as text in `answer` (a structured one, e.g. a numeric
  agent's path, as JSON);
- how it is rendered for datasets: `render(framing, action, policy, answer)`, the text after
  `ANSWER:` that a model is asked to write;
- how the model is told to answer: `instructions(framing, reasoning)`;
- what "regret" means for ranking: `regret_meaning`, one line (for a discrete choice the
  expected reward given up; for an answer task the turns wasted before the first correct answer).

Runner, store and dataset code call these and never test the kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from scenarios._errors import ScenarioError

if TYPE_CHECKING:
    from scenarios.framing import Framing

ANSWER_PREFIX = "ANSWER:"
_ANSWER_LINE = re.compile(r"(?:^|(?<=[\s*#>_`]))answer[ \t]*[*_`]*[ \t]*[:=][ \t]*[*_`]*(.*)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Parsed:
    """A reply read by an action space: the value to play, or an error saying why there is none."""

    action: int | None = None
    policy: tuple[float, ...] | None = None
    answer: str | None = None
    reasoning: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ActionSpace:
    kind: ClassVar[str]
    regret_meaning: ClassVar[str]

    def validate(self, action: Any, family: str) -> tuple[int | None, Any]:
        """(index, None), (None, probability vector) or (None, answer text); raise ScenarioError otherwise."""
        raise NotImplementedError

    def render(self, framing: Framing, action: int | None, policy: Sequence[float] | None, answer: str | None) -> str:
        raise NotImplementedError

    def instructions(self, framing: Framing, reasoning: bool = True) -> str:
        raise NotImplementedError

    def parse(self, text: str, framing: Framing, reasoning: str | None = None, choose: Any = None) -> Parsed:
        """Read a model's reply. `choose(text, framing, n, accepts_policy, reasoning)` is the caller's
        reader of option names and distributions (agents.llm.parse_answer); spaces of options use it."""
        raise NotImplementedError


@dataclass(frozen=True)
class Discrete(ActionSpace):
    n: int
    kind: ClassVar[str] = "discrete"
    regret_meaning: ClassVar[str] = "expected reward given up against the best option, summed over rounds"
    accepts_policy: ClassVar[bool] = False

    def validate(self, action: Any, family: str) -> tuple[int | None, Any]:
        if type(action) is not int:  # numpy only here, past the common case: `import scenarios` stays light
            import numpy as np

            if isinstance(action, np.integer):
                action = int(action)
        if isinstance(action, int) and not isinstance(action, bool):
            if not 0 <= action < self.n:
                raise ScenarioError(f"{family}: action {action} out of range 0..{self.n - 1}")
            return int(action), None
        if not self.accepts_policy:
            raise ScenarioError(f"{family}: expected an action index 0..{self.n - 1}, got {action!r}")
        policy = np.asarray(action, dtype=float)
        if policy.shape != (self.n,):
            raise ScenarioError(f"{family}: policy must have {self.n} entries, got shape {policy.shape}")
        if np.any(policy < -1e-9) or not np.isfinite(policy).all():
            raise ScenarioError(f"{family}: policy has negative or non-finite entries: {policy.tolist()}")
        if abs(policy.sum() - 1.0) > 1e-6:
            raise ScenarioError(f"{family}: policy must sum to 1, sums to {policy.sum():.6f}")
        return None, np.clip(policy, 0.0, None) / policy.sum()

    def render(self, framing: Framing, action: int | None, policy: Sequence[float] | None, answer: str | None) -> str:
        if policy is not None:
            return framing.policy_text(policy)
        return framing.option_name(int(action))  # type: ignore[arg-type]

    def instructions(self, framing: Framing, reasoning: bool = True) -> str:
        return framing.answer_instructions("experts" if self.accepts_policy else "bandit", reasoning, self.n)

    def parse(self, text: str, framing: Framing, reasoning: str | None = None, choose: Any = None) -> Parsed:
        read = choose(text, framing, self.n, self.accepts_policy, reasoning)
        return Parsed(read.action, read.policy, None, read.reasoning, read.error)


@dataclass(frozen=True)
class Simplex(Discrete):
    """One option or a probability vector over the options (full-information experts)."""

    kind: ClassVar[str] = "simplex"
    regret_meaning: ClassVar[str] = "expected loss above the best fixed option over the episode"
    accepts_policy: ClassVar[bool] = True


@dataclass(frozen=True)
class FreeForm(ActionSpace):
    """An answer the scenario checks itself: `what` is "number", "string" or "path" (how it reads)."""

    what: str = "string"
    example: str = ""
    kind: ClassVar[str] = "answer"
    regret_meaning: ClassVar[str] = "turns wasted before the first correct answer (all turns when none was)"

    def validate(self, action: Any, family: str) -> tuple[int | None, Any]:
        if isinstance(action, (bytes, bytearray)) or not isinstance(action, (str, int, float)) or isinstance(action, bool):
            raise ScenarioError(f"{family}: expected a {self.what} answer as text, got {action!r}")
        text = str(action).strip()
        if not text:
            raise ScenarioError(f"{family}: the answer is empty")
        if self.what == "number":
            try:
                value = float(text.replace(",", ""))
            except ValueError:
                raise ScenarioError(f"{family}: expected a number, got {text!r}") from None
            if not math.isfinite(value):
                raise ScenarioError(f"{family}: expected a finite number, got {text!r}")
        return None, text

    def render(self, framing: Framing, action: int | None, policy: Sequence[float] | None, answer: str | None) -> str:
        return "" if answer is None else str(answer)

    def instructions(self, framing: Framing, reasoning: bool = True) -> str:
        lead = ("Think step by step, then end your reply with a final line" if reasoning
                else "Answer with the final line only, with no other text,")
        example = f", for example:\n{ANSWER_PREFIX} {self.example}" if self.example else ""
        return f"{lead} of exactly this form:\n{ANSWER_PREFIX} <your {self.what}>{example}"

    def parse(self, text: str, framing: Framing, reasoning: str | None = None, choose: Any = None) -> Parsed:
        """The last `ANSWER: ...` line (markdown emphasis stripped); its value checked as a `what`."""
        matches = list(_ANSWER_LINE.finditer(text or ""))
        before = (text or "")[: matches[-1].start()] if matches else (text or "")
        before = before.rstrip().rstrip("*_`#>").rstrip()  # the answer line's own emphasis
        thoughts = "\n\n".join(p.strip() for p in (reasoning or "", before) if p and p.strip())
        if not matches:
            return Parsed(reasoning=thoughts, error=f"no final line '{ANSWER_PREFIX} <your {self.what}>'")
        value = matches[-1].group(1).strip().strip("*_`").strip().rstrip(".")
        try:
            _, value = self.validate(value, "answer")
        except ScenarioError as exc:
            return Parsed(reasoning=thoughts, error=str(exc).removeprefix("answer: "))
        return Parsed(answer=value, reasoning=thoughts)
