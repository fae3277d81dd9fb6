"""Online learning with experts: full-information losses in [0, 1], external regret.

Loss sequences follow "Do LLM Agents Have Regret?" (arXiv 2403.16843): i.i.d. uniform,
Gaussian, linear-trend, sine-trend, and an FTL-adversarial alternating sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scenarios._base import Scenario, require, scenario

LOSS_SEQUENCES = ("uniform", "gaussian", "linear-trend", "sine-trend", "ftl-adversarial")


@scenario("experts/full-info")
class FullInformationExperts(Scenario):
    """N experts; each round the agent picks an expert or a distribution, then sees every loss.

    Regret R_t = sum_{s<=t} <p_s, l_s> - min_i sum_{s<=t} l_{s,i} (the best fixed expert in
    hindsight up to t); each step's `regret` is the increment R_t - R_{t-1}, so the episode's
    sum is the external regret against the best fixed expert over the whole horizon.
    """

    kind = "experts"
    feedback = "full"
    accepts_policy = True

    @dataclass(frozen=True)
    class Params:
        n_experts: int = field(default=5, metadata={"help": "number of experts N"})
        horizon: int = field(default=50, metadata={"help": "number of rounds T"})
        losses: str = field(default="uniform", metadata={"help": f"loss sequence: {', '.join(LOSS_SEQUENCES)}"})
        noise: float = field(default=0.1, metadata={"help": "noise of gaussian and trend sequences"})

    @property
    def n_actions(self) -> int:
        return self.params.n_experts

    def _validate(self) -> None:
        p = self.params
        require(p.horizon >= 1, self.family, f"horizon must be >= 1, got {p.horizon}")
        require(p.n_experts >= 2, self.family, f"n_experts must be >= 2, got {p.n_experts}")
        require(p.losses in LOSS_SEQUENCES, self.family,
                f"losses must be one of {', '.join(LOSS_SEQUENCES)}, got {p.losses!r}")
        require(p.noise >= 0, self.family, f"noise must be >= 0, got {p.noise}")

    def _build_world(self, rng):
        n = self.params.n_experts
        # the instance fixes each expert's loss profile; episodes add fresh noise
        self.centre = rng.uniform(0.1, 0.9, n)
        self.width = rng.uniform(0.1, 0.5, n)
        self.slope = rng.uniform(-0.6, 0.6, n)
        self.amplitude = rng.uniform(0.1, 0.4, n)
        self.period = rng.uniform(5, 20, n)
        self.phase = rng.uniform(0, 2 * np.pi, n)

    def _draw_episode(self, rng):
        p = self.params
        n, horizon = p.n_experts, p.horizon
        t = np.arange(horizon)[:, None]
        kind = p.losses
        if kind == "uniform":
            low = np.clip(self.centre - self.width, 0, 1)
            high = np.clip(self.centre + self.width, 0, 1)
            losses = rng.uniform(low, high, (horizon, n))
        elif kind == "gaussian":
            losses = rng.normal(self.centre, p.noise + self.width / 2, (horizon, n))
        elif kind == "linear-trend":
            losses = self.centre + self.slope * (t / max(horizon - 1, 1) - 0.5) + rng.normal(0, p.noise, (horizon, n))
        elif kind == "sine-trend":
            wave = self.amplitude * np.sin(2 * np.pi * t / self.period + self.phase)
            losses = self.centre + wave + rng.normal(0, p.noise, (horizon, n))
        else:  # ftl-adversarial: experts 0 and 1 alternate so the leader always loses next
            losses = np.ones((horizon, n))
            losses[:, :2] = np.where(np.arange(horizon)[:, None] % 2 == 1, [[0.0, 1.0]], [[1.0, 0.0]])
            losses[0, :2] = [0.5, 0.0]
        losses = np.clip(losses, 0.0, 1.0)
        self._losses = losses
        self._loss_rows = losses.tolist()
        best_so_far = np.cumsum(losses, axis=0).min(axis=1)
        self._best_increment = np.diff(best_so_far, prepend=0.0).tolist()
        self._best_expert = int(losses.sum(axis=0).argmin())

    def expected_rewards(self, t: int) -> np.ndarray:
        return -self._losses[t]

    def optimal_action(self, t: int) -> int:
        return self._best_expert

    def _outcome(self, t, action, policy):
        row = self._loss_rows[t]
        loss = row[action] if policy is None else float(np.dot(policy, row))
        return -loss, loss - self._best_increment[t], self._best_expert, {"losses": row}

    def difficulty(self) -> dict[str, float]:
        order = ["uniform", "gaussian", "linear-trend", "sine-trend", "ftl-adversarial"]
        return {"horizon": float(self.horizon), "n_actions": float(self.n_actions),
                "sequence": float(order.index(self.params.losses))}

    def summary(self) -> dict:
        return {"losses": self.params.losses, "centre": [round(float(c), 6) for c in self.centre]}
