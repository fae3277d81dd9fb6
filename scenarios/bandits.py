"""Multi-armed bandits: Bernoulli, Gaussian and non-stationary (abrupt switches or smooth drift)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scenarios._base import Scenario, require, scenario


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


class _StationaryBandit(Scenario):
    kind = "bandit"
    feedback = "bandit"
    best_arm = True

    means: np.ndarray

    @property
    def n_actions(self) -> int:
        return len(self.means)

    def _validate(self) -> None:
        p = self.params
        require(p.horizon >= 1, self.family, f"horizon must be >= 1, got {p.horizon}")
        if p.means is None:
            require(p.n_arms >= 2, self.family, f"n_arms must be >= 2, got {p.n_arms}")
        else:
            require(len(p.means) >= 2, self.family, f"means must list at least 2 arms, got {list(p.means)}")

    def _post_build(self) -> None:
        self._best_mean = float(self.means.max())
        self._best_arm = int(self.means.argmax())
        # pseudo-regret of each arm, precomputed because step() is on the hot path
        self._gaps = (self._best_mean - self.means).tolist()

    def expected_rewards(self, t: int) -> np.ndarray:
        return self.means

    def optimal_action(self, t: int) -> int:
        return self._best_arm

    def _outcome(self, t, action, policy):
        reward = self._rewards[t][action]
        return reward, self._gaps[action], self._best_arm, {"reward": reward}

    def difficulty(self) -> dict[str, float]:
        ordered = np.sort(self.means)
        return {"horizon": float(self.horizon), "n_actions": float(self.n_actions),
                "inverse_gap": float(1.0 / max(ordered[-1] - ordered[-2], 1e-9))}

    def summary(self) -> dict:
        return {"means": [round(float(m), 6) for m in self.means], "best_arm": self._best_arm}


@scenario("bandit/bernoulli")
class BernoulliBandit(_StationaryBandit):
    """K arms paying 1 with probability mu_a, else 0. Pseudo-regret T*max mu - sum mu_{a_t}."""

    reward_values = "binary"

    @dataclass(frozen=True)
    class Params:
        n_arms: int = _help("number of arms K (ignored when means is given)", 5)
        horizon: int = _help("number of rounds T", 100)
        gap: float = _help("BanditBench gap: best arm at 0.5+gap/2, others at 0.5-gap/2", 0.2)
        means: tuple[float, ...] | None = _help("explicit arm means in [0, 1]", None)

    def _validate(self) -> None:
        super()._validate()
        p = self.params
        if p.means is None:
            require(0 < p.gap <= 1, self.family, f"gap must be in (0, 1], got {p.gap}")
        else:
            require(all(0 <= m <= 1 for m in p.means), self.family, f"means must lie in [0, 1], got {list(p.means)}")

    def _build_world(self, rng):
        p = self.params
        if p.means is not None:
            self.means = np.asarray(p.means, dtype=float)
        else:
            self.means = np.full(p.n_arms, 0.5 - p.gap / 2)
            self.means[rng.integers(p.n_arms)] = 0.5 + p.gap / 2
        self._post_build()

    def _draw_episode(self, rng):
        draws = rng.random((self.horizon, self.n_actions)) < self.means
        self._rewards = draws.astype(float).tolist()


@scenario("bandit/gaussian")
class GaussianBandit(_StationaryBandit):
    """K arms with Gaussian rewards N(mu_a, noise^2); means drawn from N(0, sigma^2) unless given."""

    reward_values = "real"

    @dataclass(frozen=True)
    class Params:
        n_arms: int = _help("number of arms K (ignored when means is given)", 5)
        horizon: int = _help("number of rounds T", 100)
        sigma: float = _help("standard deviation of the drawn arm means", 1.0)
        noise: float = _help("standard deviation of the reward noise", 1.0)
        means: tuple[float, ...] | None = _help("explicit arm means", None)

    def _validate(self) -> None:
        super()._validate()
        require(self.params.sigma > 0, self.family, f"sigma must be > 0, got {self.params.sigma}")
        require(self.params.noise >= 0, self.family, f"noise must be >= 0, got {self.params.noise}")

    def _build_world(self, rng):
        p = self.params
        self.means = np.asarray(p.means, dtype=float) if p.means is not None else rng.normal(0, p.sigma, p.n_arms)
        self._post_build()

    def _draw_episode(self, rng):
        noise = rng.normal(0.0, self.params.noise, (self.horizon, self.n_actions))
        self._rewards = (self.means + noise).tolist()


@scenario("bandit/nonstationary")
class NonStationaryBandit(Scenario):
    """Bernoulli arms whose means change over time; dynamic regret against each round's best arm.

    `abrupt`: the best arm moves at evenly spaced switch points, each switch costing `gap` of
    variation, so the number of switches is round(variation_budget / gap).
    `drift`: every mean follows a sine wave, 0.5 + amplitude*sin(2 pi c t/T + 2 pi a/K), with c
    cycles chosen so the total variation is close to the budget. `summary()` reports the exact
    variation V_T = sum_t max_a |mu_{t+1,a} - mu_{t,a}| of the drawn instance.
    """

    kind = "bandit"
    feedback = "bandit"
    best_arm = True
    reward_values = "binary"
    stationary = False

    @dataclass(frozen=True)
    class Params:
        n_arms: int = _help("number of arms K", 5)
        horizon: int = _help("number of rounds T", 200)
        mode: str = _help("'abrupt' (switches) or 'drift' (smooth sine drift)", "abrupt")
        variation_budget: float = _help("total variation V_T of the means over the episode", 1.2)
        gap: float = _help("abrupt mode: gap between the best arm and the others", 0.4)
        amplitude: float = _help("drift mode: amplitude of each mean's sine wave", 0.3)

    @property
    def n_actions(self) -> int:
        return self.params.n_arms

    def _validate(self) -> None:
        p = self.params
        require(p.horizon >= 2, self.family, f"horizon must be >= 2, got {p.horizon}")
        require(p.n_arms >= 2, self.family, f"n_arms must be >= 2, got {p.n_arms}")
        require(p.mode in ("abrupt", "drift"), self.family, f"mode must be 'abrupt' or 'drift', got {p.mode!r}")
        require(p.variation_budget >= 0, self.family, f"variation_budget must be >= 0, got {p.variation_budget}")
        require(0 < p.gap <= 1, self.family, f"gap must be in (0, 1], got {p.gap}")
        require(0 < p.amplitude <= 0.5, self.family, f"amplitude must be in (0, 0.5], got {p.amplitude}")

    def _build_world(self, rng):
        p = self.params
        t = np.arange(p.horizon)
        if p.mode == "abrupt":
            n_switches = int(round(p.variation_budget / p.gap))
            bounds = np.linspace(0, p.horizon, n_switches + 2).astype(int)
            best = rng.integers(p.n_arms)
            means = np.full((p.horizon, p.n_arms), 0.5 - p.gap / 2)
            for start, stop in zip(bounds[:-1], bounds[1:]):
                means[start:stop, best] = 0.5 + p.gap / 2
                best = (best + 1 + rng.integers(p.n_arms - 1)) % p.n_arms  # always a different arm
        else:
            phases = 2 * np.pi * np.arange(p.n_arms) / p.n_arms + rng.uniform(0, 2 * np.pi)

            def drift(cycles: float) -> np.ndarray:
                return 0.5 + p.amplitude * np.sin(2 * np.pi * cycles * t[:, None] / p.horizon + phases[None, :])

            # one sine wave varies by 4*amplitude per cycle, but V_T takes the largest change over
            # the arms each round, which for K >= 3 phase-shifted waves is more than any single
            # wave's: rescale the cycles until the realised variation meets the budget
            cycles = p.variation_budget / (4 * p.amplitude)
            for _ in range(8):
                realised = _variation(drift(cycles))
                if realised <= 0 or abs(realised - p.variation_budget) <= 1e-9 * max(1.0, p.variation_budget):
                    break
                cycles *= p.variation_budget / realised
            means = drift(cycles)
        self.means = means
        self._best = means.max(axis=1)
        self._best_arm = means.argmax(axis=1)
        self._regret_table = (self._best[:, None] - means).tolist()
        self._best_arm_list = self._best_arm.tolist()

    def _draw_episode(self, rng):
        self._rewards = (rng.random(self.means.shape) < self.means).astype(float).tolist()

    def expected_rewards(self, t: int) -> np.ndarray:
        return self.means[t]

    def _outcome(self, t, action, policy):
        reward = self._rewards[t][action]
        return reward, self._regret_table[t][action], self._best_arm_list[t], {"reward": reward}

    def variation(self) -> float:
        return _variation(self.means)

    def difficulty(self) -> dict[str, float]:
        return {"horizon": float(self.horizon), "n_actions": float(self.n_actions), "variation": self.variation()}

    def summary(self) -> dict:
        switches = np.flatnonzero(np.diff(self._best_arm)) + 1
        return {"mode": self.params.mode, "variation": round(self.variation(), 6),
                "best_arm_changes": switches.tolist()[:50]}


def _variation(means: np.ndarray) -> float:
    """V_T = sum_t max_a |mu_{t+1,a} - mu_{t,a}|."""
    return float(np.abs(np.diff(means, axis=0)).max(axis=1).sum()) if len(means) > 1 else 0.0
