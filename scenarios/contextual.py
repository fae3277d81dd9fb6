"""Contextual bandits with linear expected rewards: E[r | x, a] = theta_a . x."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scenarios._base import Scenario, require, scenario


@scenario("contextual/linear")
class LinearContextualBandit(Scenario):
    """d-dimensional contexts on the unit sphere; regret against the best arm for each context."""

    kind = "contextual"
    feedback = "bandit"
    reward_values = "real"

    @dataclass(frozen=True)
    class Params:
        n_arms: int = field(default=4, metadata={"help": "number of arms K"})
        horizon: int = field(default=100, metadata={"help": "number of rounds T"})
        dim: int = field(default=3, metadata={"help": "context dimension d"})
        noise: float = field(default=0.1, metadata={"help": "standard deviation of the reward noise"})

    @property
    def n_actions(self) -> int:
        return self.params.n_arms

    @property
    def context_dim(self) -> int:
        return self.params.dim

    def _validate(self) -> None:
        p = self.params
        require(p.horizon >= 1, self.family, f"horizon must be >= 1, got {p.horizon}")
        require(p.n_arms >= 2, self.family, f"n_arms must be >= 2, got {p.n_arms}")
        require(p.dim >= 1, self.family, f"dim must be >= 1, got {p.dim}")
        require(p.noise >= 0, self.family, f"noise must be >= 0, got {p.noise}")

    def _build_world(self, rng):
        theta = rng.normal(size=(self.params.n_arms, self.params.dim))
        self.theta = theta / np.linalg.norm(theta, axis=1, keepdims=True)

    def _draw_episode(self, rng):
        p = self.params
        contexts = rng.normal(size=(p.horizon, p.dim))
        contexts /= np.linalg.norm(contexts, axis=1, keepdims=True)
        self._contexts = np.round(contexts, 4)  # rounded so the text an LLM sees is the exact context
        self._expected = self._contexts @ self.theta.T
        rewards = self._expected + rng.normal(0, p.noise, (p.horizon, p.n_arms))
        self._rewards = rewards.tolist()
        self._regret_table = (self._expected.max(axis=1, keepdims=True) - self._expected).tolist()
        self._best_arm = self._expected.argmax(axis=1).tolist()
        self._context_tuples = [tuple(row) for row in self._contexts.tolist()]

    def context(self, t: int) -> tuple[float, ...]:
        return self._context_tuples[t]

    def expected_rewards(self, t: int) -> np.ndarray:
        return self._expected[t]

    def _outcome(self, t, action, policy):
        reward = self._rewards[t][action]
        return reward, self._regret_table[t][action], self._best_arm[t], {"reward": reward}

    def difficulty(self) -> dict[str, float]:
        return {"horizon": float(self.horizon), "n_actions": float(self.n_actions), "dim": float(self.params.dim)}

    def summary(self) -> dict:
        return {"theta": np.round(self.theta, 6).tolist()}
