"""A toy free-form-answer family in one file: "what is a + b?", answered as a number and checked here.

It is the worked example of docs/extending.md (a scenario family, and an agent that explains
itself): nothing in the runner, store or dataset code knows it exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agents import EXPLAINERS, Agent, Decision
from scenarios import FreeForm, Scenario, scenario
from scenarios._base import require

RETRY = "The answer is incorrect. Please try again."


@scenario("toy/sum", help="what is a + b? a number the scenario checks; regret = turns wasted before it is right")
class ToySum(Scenario):
    """Two numbers drawn from the instance seed; each turn the agent answers their sum."""

    kind = "answer"
    feedback = "answer"
    framed = False  # the question is the scenario's own text, not a framing's story
    action_space = FreeForm("number", example="12")

    @dataclass(frozen=True)
    class Params:
        horizon: int = field(default=3, metadata={"help": "turns allowed (the episode ends at the first right answer)"})
        largest: int = field(default=20, metadata={"help": "the addends are drawn from 0..largest"})

    @property
    def n_actions(self) -> int:
        return 0  # no options: answers are free-form

    def _validate(self) -> None:
        require(self.params.horizon >= 1, self.family, f"horizon must be >= 1, got {self.params.horizon}")

    def _build_world(self, rng):
        self.a, self.b = (int(x) for x in rng.integers(0, self.params.largest + 1, size=2))

    def _draw_episode(self, rng):
        pass  # nothing random happens after the instance is drawn

    def describe(self) -> str:
        return f"What is {self.a} + {self.b}?"

    def expected_rewards(self, t):
        return np.zeros(0)

    def optimal_action(self, t):
        return None

    def _outcome(self, t, action, answer):
        right = float(answer) == self.a + self.b
        # regret for ranking: one per wasted turn, so an episode's regret counts the turns before the right answer
        feedback = {"reward": float(right), "correct": right, "message": "Correct." if right else RETRY}
        return float(right), 0.0 if right else 1.0, None, feedback

    def step(self, action):
        step = super().step(action)
        if step.feedback["correct"] and not step.done:  # the first right answer ends the episode
            return type(step)(step.t, step.reward, step.regret, None, step.feedback, True, None)
        return step

    def summary(self):
        return {"a": self.a, "b": self.b}


class OffByOne(Agent):
    """Answers a + b - 1 first, then a + b: one wasted turn per episode (a privileged toy solver)."""

    kinds = frozenset({"answer"})
    privileged = True
    explainer = "toy/off-by-one"

    def reset(self, episode):
        super().reset(episode)
        self.truth = episode.scenario.a + episode.scenario.b

    def decide(self, observation):
        guess = self.truth - 1 if observation.t == 0 else self.truth
        return Decision(answer=str(guess), info={"guess": guess, "turn": observation.t})


@EXPLAINERS.register("toy/off-by-one")
def explain_off_by_one(framing, row) -> str:
    """How OffByOne explains an answer in datasets."""
    import json

    info = json.loads(row["info"])
    return "I add the two numbers." if info["turn"] == 0 else "I was one short; I add again, carefully."
