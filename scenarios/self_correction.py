"""Multi-turn self-correction (RISE, Qu et al., arXiv 2407.18219): a problem with one checkable answer.

An episode is up to `turns` attempts at one problem. The agent's action is its whole reply
(free text); the scenario reads the answer from it (`scenarios._answers`: the last
`\\boxed{}`, or for numeric problems the last number), checks it against the gold answer and
scores it with RISE's reward (1 right, 0 wrong; -1 for a numeric reply with no answer at all,
0 for a MATH reply without `\\boxed{}`). The next observation is the conversation so far plus
the retry prompt (default, from the reference code: "The answer is incorrect. Please try
again. Here's the question: {query}").

- `oracle = false` (default): the retry prompt follows every answer, right or wrong, so no
  correctness leaks into the conversation; all `turns` turns are played (what m1@t5 needs).
- `oracle = true`: the episode stops at the first correct answer (p1@t5).
- `context_window = k`: the model sees the first question and only the last k - 1 attempts
  with their retry prompts (the reference recommends 2 for 5 turns); 0 keeps everything.

Regret (what dataset selectors rank by): 1 for every turn whose answer is wrong, 0 for a
right one; so an oracle episode's regret is the number of turns wasted before the first
correct answer (all `turns` if it never gets there), and a no-oracle episode's regret counts
every wrong turn, including a right answer later abandoned.

Families: `self-correction/arithmetic` (built-in seeded word problems: `steps`, `max_number`,
`operations`), `self-correction/gsm8k` and `self-correction/math` (a JSONL `path`; the
instance seed picks problem `seed % number of problems`, so `seeds = [0, 1, ..., n-1]` in a
suite enumerates a file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from scenarios._answers import CheckedAnswer, check_answer, normalise_gold, normalise_math, read_answer
from scenarios._base import Observation, Scenario, ScenarioError, Step, require, scenario
from scenarios._spaces import FreeForm
from scenarios._problems import (
    OPERATIONS,
    Problem,
    ProblemFileError,
    arithmetic_problem,
    load_gsm8k,
    load_math,
    load_problems,
)

__all__ = [
    "ANSWER_KIND", "INSTRUCTION", "RETRY_PROMPT", "ArithmeticSelfCorrection", "CheckedAnswer", "GSM8KSelfCorrection",
    "MATHSelfCorrection", "Problem", "ProblemFileError", "SelfCorrection", "arithmetic_problem", "check_answer",
    "load_gsm8k", "load_math", "load_problems", "normalise_gold", "normalise_math", "read_answer",
]

ANSWER_KIND = "answer"
RETRY_PROMPT = "The answer is incorrect. Please try again. Here's the question: {query}"
INSTRUCTION = ("Solve the following math problem step by step. Give the final answer as a number in the form "
               "\\boxed{ANSWER}.")


def _help(default: Any, text: str) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class SelfCorrectionParams:
    turns: int = _help(5, "attempts per episode (the horizon)")
    oracle: bool = _help(False, "stop at the first correct answer (p1@t5); false: the retry prompt follows every answer")
    context_window: int = _help(0, "turns the model sees: the question plus the last k - 1 attempts (0: all)")
    retry_prompt: str = _help(RETRY_PROMPT, "the user turn after each answer; {query} is the question")
    instruction: str = _help(INSTRUCTION, "text before the question in the first user turn ('' for none)")


@dataclass(frozen=True)
class ArithmeticParams(SelfCorrectionParams):
    steps: int = _help(2, "operations chained in each word problem")
    max_number: int = _help(20, "largest number added or subtracted (and the largest starting amount)")
    operations: str = _help("+-*", f"operations drawn from {OPERATIONS!r}")


@dataclass(frozen=True)
class FileParams(SelfCorrectionParams):
    path: str = _help("", "JSONL problem file")


class SelfCorrection(Scenario):
    """Base of the self-correction families; a subclass says where its problem comes from."""

    kind: ClassVar[str] = ANSWER_KIND
    feedback: ClassVar[str] = "bandit"
    framed: ClassVar[bool] = False
    # the reply itself is the action (any text, an empty one included: it scores "no answer")
    action_space = FreeForm("string", example="\\boxed{12}")
    Params: ClassVar[type] = SelfCorrectionParams

    @property
    def n_actions(self) -> int:
        return 0  # the action is free text

    @property
    def horizon(self) -> int:
        return self.params.turns

    def _validate(self) -> None:
        p = self.params
        require(isinstance(p.turns, int) and p.turns >= 1, self.family, f"turns must be >= 1, got {p.turns!r}")
        require(isinstance(p.oracle, bool), self.family, f"oracle must be true or false, got {p.oracle!r}")
        require(isinstance(p.context_window, int) and p.context_window >= 0, self.family,
                f"context_window must be an integer >= 0 (0: all turns), got {p.context_window!r}")
        try:
            p.retry_prompt.format(query="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ScenarioError(f"{self.family}: retry_prompt may only use the placeholder {{query}} ({exc!r})") from None

    def _problem(self, seed: int) -> Problem:
        raise NotImplementedError

    def _build_world(self, rng: np.random.Generator) -> None:
        self.problem = self._problem(self.instance_seed)

    def _draw_episode(self, rng: np.random.Generator) -> None:
        self._replies: list[str] = []  # nothing random: the problem is the instance

    def expected_rewards(self, t: int) -> np.ndarray:
        return np.zeros(0)  # no action indices

    def _outcome(self, t, action, policy):  # pragma: no cover - step() is overridden
        raise NotImplementedError

    # --- the conversation ------------------------------------------------------------------
    def first_message(self) -> dict[str, str]:
        instruction = self.params.instruction.strip()
        text = f"{instruction}\n\n{self.problem.question}" if instruction else self.problem.question
        return {"role": "user", "content": text}

    def describe(self) -> str:
        """The task as the scenario tells it (it is not told through a framing)."""
        return self.first_message()["content"]

    def retry_message(self) -> dict[str, str]:
        return {"role": "user", "content": self.params.retry_prompt.format(query=self.problem.question)}

    def conversation(self, replies: Sequence[str]) -> tuple[dict[str, str], ...]:
        """What the model sees after `replies`: the question, then per kept attempt the reply and the retry prompt."""
        window = self.params.context_window
        kept = list(replies) if window == 0 else (list(replies)[-(window - 1):] if window > 1 else [])
        messages = [self.first_message()]
        for reply in kept:
            messages += [{"role": "assistant", "content": reply}, self.retry_message()]
        return tuple(messages)

    def check(self, reply: str) -> CheckedAnswer:
        """Read, check and score one reply (no effect on the episode)."""
        return check_answer(self.problem.style, reply, self.problem.answer)

    # --- the Gymnasium-style loop -----------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        super().reset(seed)
        return Observation(0, None, messages=self.conversation([]))

    def validate_action(self, action: Any) -> tuple[int | None, np.ndarray | None]:
        if not isinstance(action, str):
            raise ScenarioError(f"{self.family}: the action is the reply text, got {type(action).__name__}")
        return None, None

    def step(self, action: str) -> Step:
        if not self._episode_ready:
            raise ScenarioError(f"{self.family}: call reset(seed) before step()")
        t = self._t
        if t >= self.horizon:
            raise ScenarioError(f"{self.family}: episode is over ({self.horizon} turns)")
        self.validate_action(action)
        checked = self.check(action)
        self._replies.append(action)
        self._t = t + 1
        done = self._t >= self.horizon or (self.params.oracle and checked.correct)
        if done:
            self._episode_ready = False
        feedback = {"reward": checked.reward, "answer": checked.answer, "correct": checked.correct}
        observation = None if done else Observation(self._t, None, messages=self.conversation(self._replies))
        return Step(t, checked.reward, 0.0 if checked.correct else 1.0, None, feedback, done, observation)

    def sample_action(self, rng: np.random.Generator) -> str:
        """A random reply: the gold answer, a wrong number or no answer, each a third of the time."""
        choice = int(rng.integers(3))
        if choice == 0:
            return f"\\boxed{{{self.problem.answer}}}"
        return f"I get {int(rng.integers(10**6))} apples." if choice == 1 else "I am not sure."

    def summary(self) -> dict[str, Any]:
        return {"answer": self.problem.answer, "style": self.problem.style, "source": self.problem.source,
                "oracle": self.params.oracle, "turns": self.params.turns}


@scenario("self-correction/arithmetic")
class ArithmeticSelfCorrection(SelfCorrection):
    """Built-in seeded arithmetic word problems (GSM8K-style numeric answers)."""

    Params = ArithmeticParams

    def _validate(self) -> None:
        super()._validate()
        p = self.params
        require(p.steps >= 1, self.family, f"steps must be >= 1, got {p.steps}")
        require(p.max_number >= 2, self.family, f"max_number must be >= 2, got {p.max_number}")
        require(bool(p.operations) and not set(p.operations) - set(OPERATIONS), self.family,
                f"operations must be drawn from {OPERATIONS!r}, got {p.operations!r}")

    def _problem(self, seed: int) -> Problem:
        p = self.params
        return arithmetic_problem(seed, p.steps, p.max_number, p.operations)

    def difficulty(self) -> dict[str, float]:
        return {"steps": float(self.params.steps), "max_number": float(self.params.max_number)}


class _FileSelfCorrection(SelfCorrection):
    Params = FileParams
    style: ClassVar[str]

    def _validate(self) -> None:
        super()._validate()
        require(bool(self.params.path), self.family, "needs a problem file: params = {path = \"problems.jsonl\"}")
        self.problems = load_problems(self.params.path, self.style)  # fails now, naming the file and line

    def _problem(self, seed: int) -> Problem:
        return self.problems[seed % len(self.problems)]


@scenario("self-correction/gsm8k")
class GSM8KSelfCorrection(_FileSelfCorrection):
    """GSM8K JSONL problems: `question`, and `answer` ending in `#### N`."""

    style = "gsm8k"


@scenario("self-correction/math")
class MATHSelfCorrection(_FileSelfCorrection):
    """MATH JSONL problems: `problem`, and `solution` with the answer in `\\boxed{}`."""

    style = "math"
