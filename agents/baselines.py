"""Algorithm baselines: classic bandit, contextual-bandit and experts algorithms, plus an oracle.

Every baseline is a dataclass whose fields are its hyper-parameters (`metadata={"help": ...}`),
registered with `@baseline(name, kinds=...)`. Per-episode state is built in `reset`; the only
source of randomness is `numpy.random.default_rng(episode.seed)` created there, so an agent
given the same episode seed on the same scenario instance makes the same decisions. Agents
learn only from `step.feedback` (`{"reward": r}` or `{"losses": [...]}`), never from regret.

Decisions carry small `info` dicts (indices, counts, means, probabilities) that a dataset
builder can verbalise into the algorithm's reason. Everything on the hot path uses plain
Python lists and `math` for small K, which is faster than many tiny numpy calls; random
numbers are drawn in bulk in `reset` where the algorithm allows it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from agents._base import Agent, Decision, EpisodeInfo, baseline
from agents._explain import View, untried_first
from scenarios import ConfigError, Observation, Step

__all__ = [
    "DUCB",
    "EXP3",
    "FTL",
    "FTPL",
    "EpsilonGreedy",
    "Greedy",
    "Hedge",
    "LinUCB",
    "Oracle",
    "SlidingWindowUCB",
    "ThompsonBernoulli",
    "ThompsonGaussian",
    "UCB1",
    "Uniform",
]

_ALL_KINDS = ("bandit", "contextual", "experts")
_BANDIT_KINDS = ("bandit", "contextual")


def _param(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


def _r4(values) -> list[float]:
    return [round(v, 4) for v in values]


def _check(condition: bool, agent: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"agent {agent!r}: {message}")


def _sample(probs: list[float], u: float) -> int:
    """Inverse-CDF draw of an index from `probs` with the uniform number `u`."""
    acc = 0.0
    for i, p in enumerate(probs):
        acc += p
        if u < acc:
            return i
    return len(probs) - 1  # rounding left u >= sum(probs)


# --- explanations (datasets verbalise an algorithm's decisions with these; see agents._explain) ---
def _explain_oracle(fr, row) -> str:
    return f"I know which {fr.option_noun} is best (privileged oracle), so I choose {View(fr, row).chosen}."


def _explain_uniform(fr, row) -> str:
    return f"I choose a {fr.option_noun} uniformly at random: {View(fr, row).chosen}."


def _explain_means(fr, row) -> str:
    v = View(fr, row)
    return f"Average {fr.reward_noun}s so far: {v.listing(v.info['means'])}. {v.cap} has the highest, so I choose it."


def _explain_epsilon(fr, row) -> str:
    v = View(fr, row)
    means = f"Average {fr.reward_noun}s so far: {v.listing(v.info['means'])}. " if "means" in v.info else ""
    if v.info.get("explore"):
        return f"{means}This round I explore: a {fr.option_noun} chosen at random, {v.chosen}."
    return f"{means}{v.cap} has the highest average, so I exploit it."


def _explain_index(fr, row) -> str:
    v = View(fr, row)
    estimate = "predicted" if v.contextual else "average"
    text = (f"Upper confidence bound of each {fr.option_noun} ({estimate} {fr.reward_noun} plus an exploration bonus "
            f"that shrinks the more often it is chosen): {v.listing(v.info['index'])}.")
    if "means" in v.info and "counts" in v.info:
        means = (f"Predicted {fr.reward_noun}s for this {fr.context_noun}" if v.contextual
                 else f"Average {fr.reward_noun}s")
        text += f" {means}: {v.listing(v.info['means'])}; times chosen: {v.listing(v.info['counts'])}."
    return text + f" {v.cap} has the highest bound, so I choose it."


def _explain_samples(fr, row) -> str:
    v = View(fr, row)
    return (f"I draw one plausible average {fr.reward_noun} for each {fr.option_noun} from what I have seen so far "
            f"(Thompson sampling): {v.listing(v.info['samples'])}. {v.cap} drew the highest, so I choose it.")


def _explain_exp3(fr, row) -> str:
    v = View(fr, row)
    return (f"Exponential weights over the {fr.option_plural} (favouring high past {fr.reward_noun}s, with some "
            f"exploration) give the probabilities {v.listing(v.info['probs'])}; my random draw picked {v.chosen}.")


def _totals(v: View) -> str:
    return f"Total {v.fr.loss_noun} of each {v.fr.option_noun} so far: {v.listing(v.info['cum_loss'])}"


def _explain_hedge(fr, row) -> str:
    return (f"{_totals(View(fr, row))}. I weight each {fr.option_noun} by exp(-eta x its total {fr.loss_noun}), "
            f"so {fr.option_plural} with lower totals get more probability.")


def _explain_ftl(fr, row) -> str:
    v = View(fr, row)
    return f"{_totals(v)}. {v.cap} has the lowest total, so I follow it."


def _explain_ftpl(fr, row) -> str:
    v = View(fr, row)
    return (f"{_totals(v)}; after a random perturbation: {v.listing(v.info['perturbed'])}. "
            f"{v.cap} has the lowest perturbed total.")


class _ArmStats(Agent):
    """Empirical counts, sums and means per arm, learnt from `{"reward": r}` feedback."""

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        k = episode.n_actions
        self.k = k
        self.counts = [0] * k
        self.sums = [0.0] * k
        self.means = [0.0] * k

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        a = decision.action
        n = self.counts[a] + 1
        s = self.sums[a] + step.feedback["reward"]
        self.counts[a] = n
        self.sums[a] = s
        self.means[a] = s / n

    def _initial(self, t: int) -> Decision:
        """Round-robin over the arms in the first K rounds."""
        return Decision(action=t, info={"initial": True, "counts": self.counts.copy()})


# --------------------------------------------------------------------------------------------
# all kinds


@baseline("uniform", kinds=_ALL_KINDS)
@dataclass
class Uniform(Agent):
    """Uniformly random action every round (experts: a uniformly random expert)."""

    explain = staticmethod(_explain_uniform)

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        rng = np.random.default_rng(episode.seed)
        self._actions = rng.integers(episode.n_actions, size=episode.horizon).tolist()
        self._p = round(1.0 / episode.n_actions, 4)

    def decide(self, observation: Observation) -> Decision:
        return Decision(action=self._actions[observation.t], info={"probability": self._p})


@baseline("oracle", kinds=_ALL_KINDS)
@dataclass
class Oracle(Agent):
    """Privileged: plays the scenario's optimal action (experts: best fixed expert in hindsight).

    Its regret is exactly zero; it reads `episode.scenario.optimal_action(t)` and never steps it.
    """

    privileged: ClassVar[bool] = True

    explain = staticmethod(_explain_oracle)

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        if episode.scenario is None:
            raise ValueError("agent 'oracle' is privileged: the runner must pass the scenario in EpisodeInfo.scenario")
        self._optimal = episode.scenario.optimal_action

    def decide(self, observation: Observation) -> Decision:
        return Decision(action=self._optimal(observation.t), info={"oracle": True})


# --------------------------------------------------------------------------------------------
# stochastic bandits (also usable, context-blind, on contextual scenarios)


@baseline("greedy", kinds=_BANDIT_KINDS)
@dataclass
class Greedy(_ArmStats):
    """Pull each arm once, then always the best empirical mean (ties: lowest index)."""

    explain = staticmethod(untried_first(_explain_means))

    def decide(self, observation: Observation) -> Decision:
        t = observation.t
        if t < self.k:
            return self._initial(t)
        means = self.means
        a = means.index(max(means))
        return Decision(action=a, info={"means": _r4(means), "counts": self.counts.copy()})


@baseline("epsilon-greedy", kinds=_BANDIT_KINDS)
@dataclass
class EpsilonGreedy(_ArmStats):
    """Pull each arm once; then explore a uniformly random arm with probability epsilon, else exploit."""

    epsilon: float = _param(0.1, "probability of exploring a uniformly random arm")

    explain = staticmethod(untried_first(_explain_epsilon))

    def __post_init__(self) -> None:
        _check(0.0 <= self.epsilon <= 1.0, "epsilon-greedy", f"epsilon must be in [0, 1], got {self.epsilon}")

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        rng = np.random.default_rng(episode.seed)
        self._u = rng.random(episode.horizon).tolist()
        self._arms = rng.integers(episode.n_actions, size=episode.horizon).tolist()

    def decide(self, observation: Observation) -> Decision:
        t = observation.t
        if t < self.k:
            return self._initial(t)
        means = self.means
        if self._u[t] < self.epsilon:
            return Decision(action=self._arms[t], info={"explore": True, "means": _r4(means),
                                                        "counts": self.counts.copy()})
        a = means.index(max(means))
        return Decision(action=a, info={"explore": False, "means": _r4(means), "counts": self.counts.copy()})


@baseline("ucb1", kinds=_BANDIT_KINDS)
@dataclass
class UCB1(_ArmStats):
    """UCB1 (Auer et al. 2002): mean + sqrt(c ln t / n), t the number of pulls so far."""

    c: float = _param(2.0, "exploration constant c in sqrt(c ln t / n)")

    explain = staticmethod(untried_first(_explain_index))

    def __post_init__(self) -> None:
        _check(self.c >= 0, "ucb1", f"c must be >= 0, got {self.c}")

    def decide(self, observation: Observation) -> Decision:
        t = observation.t
        if t < self.k:
            return self._initial(t)
        scale = self.c * math.log(t)
        sqrt = math.sqrt
        index = [m + sqrt(scale / n) for m, n in zip(self.means, self.counts)]
        a = index.index(max(index))
        return Decision(action=a, info={"index": _r4(index), "counts": self.counts.copy(), "means": _r4(self.means)})


@baseline("thompson", kinds=_BANDIT_KINDS)
@dataclass
class ThompsonBernoulli(Agent):
    """Beta-Bernoulli Thompson sampling; a reward r outside {0, 1} counts as a success with
    probability clip(r, 0, 1) (the Bernoulli trick of Agrawal and Goyal)."""

    prior_alpha: float = _param(1.0, "Beta prior's alpha (pseudo-successes)")
    prior_beta: float = _param(1.0, "Beta prior's beta (pseudo-failures)")

    explain = staticmethod(_explain_samples)

    def __post_init__(self) -> None:
        _check(self.prior_alpha > 0 and self.prior_beta > 0, "thompson",
               f"prior_alpha and prior_beta must be > 0, got {self.prior_alpha}, {self.prior_beta}")

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        k = episode.n_actions
        self._rng = np.random.default_rng(episode.seed)
        self._u = self._rng.random(episode.horizon).tolist()  # for the Bernoulli trick
        self._alpha = [float(self.prior_alpha)] * k
        self._beta = [float(self.prior_beta)] * k
        self._scalar = k <= 16  # per-arm scalar draws are faster than one array draw for small K

    def decide(self, observation: Observation) -> Decision:
        if self._scalar:
            beta = self._rng.beta
            samples = [beta(x, y) for x, y in zip(self._alpha, self._beta)]
        else:
            samples = self._rng.beta(self._alpha, self._beta).tolist()
        a = samples.index(max(samples))
        return Decision(action=a, info={"samples": _r4(samples), "alpha": self._alpha.copy(),
                                        "beta": self._beta.copy()})

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        r = step.feedback["reward"]
        if r == 1.0:
            success = True
        elif r == 0.0:
            success = False
        else:
            success = self._u[observation.t] < min(max(r, 0.0), 1.0)
        if success:
            self._alpha[decision.action] += 1.0
        else:
            self._beta[decision.action] += 1.0


@baseline("thompson-gaussian", kinds=_BANDIT_KINDS)
@dataclass
class ThompsonGaussian(Agent):
    """Gaussian Thompson sampling: prior N(0, prior_var) per arm, known reward noise variance."""

    prior_var: float = _param(1.0, "variance of the Gaussian prior N(0, prior_var) on each arm's mean")
    noise_var: float = _param(1.0, "assumed (known) variance of the reward noise")

    explain = staticmethod(_explain_samples)

    def __post_init__(self) -> None:
        _check(self.prior_var > 0 and self.noise_var > 0, "thompson-gaussian",
               f"prior_var and noise_var must be > 0, got {self.prior_var}, {self.noise_var}")

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        k = episode.n_actions
        rng = np.random.default_rng(episode.seed)
        self._z = rng.standard_normal((episode.horizon, k)).tolist()
        self._precision = [1.0 / self.prior_var] * k
        self._weighted = [0.0] * k  # sum of rewards / noise_var
        self._counts = [0] * k

    def decide(self, observation: Observation) -> Decision:
        sqrt = math.sqrt
        samples = [w / p + z / sqrt(p) for w, p, z in zip(self._weighted, self._precision, self._z[observation.t])]
        a = samples.index(max(samples))
        means = [w / p for w, p in zip(self._weighted, self._precision)]
        return Decision(action=a, info={"samples": _r4(samples), "means": _r4(means), "counts": self._counts.copy()})

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        a = decision.action
        self._precision[a] += 1.0 / self.noise_var
        self._weighted[a] += step.feedback["reward"] / self.noise_var
        self._counts[a] += 1


@baseline("exp3", kinds=_ALL_KINDS)
@dataclass
class EXP3(Agent):
    """EXP3 (Auer et al. 2002) for adversarial bandits, rewards clipped to [0, 1].

    On experts scenarios it uses only the chosen expert's loss (reward = 1 - loss), i.e. it
    plays the experts problem as a bandit.
    """

    gamma: float | None = _param(None, "exploration rate; default min(1, sqrt(K ln K / ((e - 1) T)))")

    explain = staticmethod(_explain_exp3)

    def __post_init__(self) -> None:
        if self.gamma is not None:
            _check(0.0 < self.gamma <= 1.0, "exp3", f"gamma must be in (0, 1], got {self.gamma}")

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        k = episode.n_actions
        self.k = k
        if self.gamma is None:
            self._g = min(1.0, math.sqrt(k * math.log(k) / ((math.e - 1.0) * episode.horizon)))
        else:
            self._g = float(self.gamma)
        self._u = np.random.default_rng(episode.seed).random(episode.horizon).tolist()
        self._logw = [0.0] * k
        self._experts = episode.kind == "experts"
        self._p: list[float] = []

    def decide(self, observation: Observation) -> Decision:
        logw = self._logw
        top = max(logw)
        exp = math.exp
        w = [exp(lw - top) for lw in logw]
        g = self._g
        scale = (1.0 - g) / sum(w)
        floor = g / self.k
        p = [wi * scale + floor for wi in w]
        self._p = p
        return Decision(action=_sample(p, self._u[observation.t]), info={"probs": _r4(p)})

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        a = decision.action
        if self._experts:
            r = 1.0 - step.feedback["losses"][a]
        else:
            r = step.feedback["reward"]
        r = min(max(r, 0.0), 1.0)
        self._logw[a] += self._g * (r / self._p[a]) / self.k


# --------------------------------------------------------------------------------------------
# full-information experts


@baseline("hedge", kinds=("experts",))
@dataclass
class Hedge(Agent):
    """Hedge / multiplicative weights: p_i proportional to exp(-eta L_i); answers with the vector.

    With eta = sqrt(8 ln N / T) its external regret is at most sqrt(T ln N / 2) on any loss
    sequence in [0, 1].
    """

    eta: float | None = _param(None, "learning rate; default sqrt(8 ln N / T)")

    explain = staticmethod(_explain_hedge)

    def __post_init__(self) -> None:
        if self.eta is not None:
            _check(self.eta > 0, "hedge", f"eta must be > 0, got {self.eta}")

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        n = episode.n_actions
        self._eta = self.eta if self.eta is not None else math.sqrt(8.0 * math.log(n) / episode.horizon)
        self._loss = [0.0] * n

    def decide(self, observation: Observation) -> Decision:
        loss = self._loss
        low = min(loss)
        eta = self._eta
        exp = math.exp
        w = [exp(-eta * (x - low)) for x in loss]
        total = sum(w)
        policy = tuple(wi / total for wi in w)
        return Decision(policy=policy, info={"cum_loss": _r4(loss)})

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        self._loss = [x + y for x, y in zip(self._loss, step.feedback["losses"])]


@baseline("ftl", kinds=("experts",))
@dataclass
class FTL(Agent):
    """Follow-the-Leader: the expert with the least cumulative loss so far (ties: lowest index)."""

    explain = staticmethod(_explain_ftl)

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        self._loss = [0.0] * episode.n_actions

    def decide(self, observation: Observation) -> Decision:
        loss = self._loss
        return Decision(action=loss.index(min(loss)), info={"cum_loss": _r4(loss)})

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        self._loss = [x + y for x, y in zip(self._loss, step.feedback["losses"])]


@baseline("ftpl", kinds=("experts",))
@dataclass
class FTPL(Agent):
    """Follow-the-Perturbed-Leader (Kalai and Vempala): argmin_i L_i - scale sqrt(T) X_i, with
    X_i fresh each round, exponential(1) or uniform[0, 1]."""

    perturbation: str = _param("exponential", "perturbation distribution: 'exponential' or 'uniform'")
    scale: float = _param(1.0, "perturbation size, in units of sqrt(T)")

    explain = staticmethod(_explain_ftpl)

    def __post_init__(self) -> None:
        _check(self.perturbation in ("exponential", "uniform"), "ftpl",
               f"perturbation must be 'exponential' or 'uniform', got {self.perturbation!r}")
        _check(self.scale >= 0, "ftpl", f"scale must be >= 0, got {self.scale}")

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        n, horizon = episode.n_actions, episode.horizon
        rng = np.random.default_rng(episode.seed)
        draws = rng.exponential(size=(horizon, n)) if self.perturbation == "exponential" else rng.random((horizon, n))
        self._noise = (draws * (self.scale * math.sqrt(horizon))).tolist()
        self._loss = [0.0] * n

    def decide(self, observation: Observation) -> Decision:
        score = [x - z for x, z in zip(self._loss, self._noise[observation.t])]
        return Decision(action=score.index(min(score)), info={"cum_loss": _r4(self._loss), "perturbed": _r4(score)})

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        self._loss = [x + y for x, y in zip(self._loss, step.feedback["losses"])]


# --------------------------------------------------------------------------------------------
# contextual


@baseline("linucb", kinds=("contextual",))
@dataclass
class LinUCB(Agent):
    """Disjoint LinUCB (Li et al. 2010): per-arm ridge regression, index theta_a.x + alpha ||x||_{A_a^-1}."""

    alpha: float = _param(1.0, "width of the confidence bonus")
    ridge: float = _param(1.0, "ridge regularisation lambda (A_a starts at lambda I)")

    explain = staticmethod(untried_first(_explain_index))

    def __post_init__(self) -> None:
        _check(self.alpha >= 0, "linucb", f"alpha must be >= 0, got {self.alpha}")
        _check(self.ridge > 0, "linucb", f"ridge must be > 0, got {self.ridge}")

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        k, d = episode.n_actions, episode.context_dim
        _check(d >= 1, "linucb", f"needs a contextual scenario with context_dim >= 1, got {d}")
        self._a_inv = np.tile(np.eye(d) / self.ridge, (k, 1, 1))
        self._b = np.zeros((k, d))
        self._theta = np.zeros((k, d))
        self._counts = [0] * k

    def decide(self, observation: Observation) -> Decision:
        if observation.context is None:
            raise ValueError("agent 'linucb': the observation has no context")
        x = np.asarray(observation.context, dtype=float)
        a_inv_x = self._a_inv @ x  # (K, d)
        width = np.sqrt(a_inv_x @ x)  # ||x|| in each arm's A^-1 norm
        mean = self._theta @ x
        index = mean + self.alpha * width
        a = int(index.argmax())
        self._x, self._a_inv_x, self._width2 = x, a_inv_x[a], float(width[a]) ** 2
        return Decision(action=a, info={"index": index.round(4).tolist(), "means": mean.round(4).tolist(),
                                        "counts": self._counts.copy()})

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        a = decision.action
        x = self._x
        v = self._a_inv_x
        a_inv = self._a_inv[a]
        a_inv -= np.outer(v, v) / (1.0 + self._width2)  # Sherman-Morrison
        self._b[a] += step.feedback["reward"] * x
        self._theta[a] = a_inv @ self._b[a]
        self._counts[a] += 1


# --------------------------------------------------------------------------------------------
# non-stationary bandits


@baseline("sw-ucb", kinds=("bandit",))
@dataclass
class SlidingWindowUCB(Agent):
    """Sliding-window UCB (Garivier and Moulines 2011): UCB on the last `window` rounds only,
    bonus sqrt(c ln min(t, window) / n_window). An arm unseen in the window is played first.

    The default c = 0.2 is much smaller than UCB1's 2: within a window of a few hundred rounds
    a UCB1-sized bonus keeps re-exploring every arm, which on bandit/nonstationary (K = 5,
    T = 2000, abrupt or drift) costs more than it gains; 0.2 was the best of 0.05-2 there.
    """

    window: int | None = _param(None, "window length; default int(2 sqrt(T ln T))")
    c: float = _param(0.2, "exploration constant c in sqrt(c ln min(t, window) / n)")

    explain = staticmethod(untried_first(_explain_index))

    def __post_init__(self) -> None:
        if self.window is not None:
            _check(self.window >= 1, "sw-ucb", f"window must be >= 1, got {self.window}")
        _check(self.c >= 0, "sw-ucb", f"c must be >= 0, got {self.c}")

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        k, horizon = episode.n_actions, episode.horizon
        self._w = self.window if self.window is not None else max(k, int(2 * math.sqrt(horizon * math.log(max(horizon, 2)))))
        self._history: deque[tuple[int, float]] = deque()
        self.counts = [0] * k
        self.sums = [0.0] * k

    def decide(self, observation: Observation) -> Decision:
        counts = self.counts
        if 0 in counts:
            return Decision(action=counts.index(0), info={"initial": True, "counts": counts.copy()})
        scale = self.c * math.log(max(min(observation.t, self._w), 1))
        sqrt = math.sqrt
        means = [s / n for s, n in zip(self.sums, counts)]
        index = [m + sqrt(scale / n) for m, n in zip(means, counts)]
        a = index.index(max(index))
        return Decision(action=a, info={"index": _r4(index), "counts": counts.copy(), "means": _r4(means)})

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        a = decision.action
        r = step.feedback["reward"]
        history = self._history
        history.append((a, r))
        self.counts[a] += 1
        self.sums[a] += r
        if len(history) > self._w:
            old, old_r = history.popleft()
            self.counts[old] -= 1
            self.sums[old] -= old_r


@baseline("d-ucb", kinds=("bandit",))
@dataclass
class DUCB(Agent):
    """Discounted UCB (Kocsis and Szepesvari; Garivier and Moulines 2011): counts and sums decay
    by gamma each round; bonus sqrt(c ln n_gamma / N_gamma(a)), n_gamma the discounted total.

    Defaults: gamma = 1 - 1 / (4 sqrt(T)) (Garivier and Moulines' choice for one breakpoint;
    0.9944 at T = 2000) and c = 0.2. A fixed gamma = 0.98 (memory ~50 rounds) or a UCB1-sized
    c = 2 keeps re-exploring every arm and loses to plain UCB1 on bandit/nonstationary
    (K = 5, T = 2000, V_T = 2); with these defaults D-UCB beats UCB1 there, abrupt or drift.
    """

    gamma: float | None = _param(None, "discount factor per round; default 1 - 1 / (4 sqrt(T))")
    c: float = _param(0.2, "exploration constant c in sqrt(c ln n / N)")

    explain = staticmethod(untried_first(_explain_index))

    def __post_init__(self) -> None:
        if self.gamma is not None:
            _check(0.0 < self.gamma <= 1.0, "d-ucb", f"gamma must be in (0, 1], got {self.gamma}")
        _check(self.c >= 0, "d-ucb", f"c must be >= 0, got {self.c}")

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        k = episode.n_actions
        self.k = k
        self._g = self.gamma if self.gamma is not None else 1.0 - 1.0 / (4.0 * math.sqrt(episode.horizon))
        self.counts = [0.0] * k  # discounted
        self.sums = [0.0] * k

    def decide(self, observation: Observation) -> Decision:
        counts = self.counts
        if 0.0 in counts:  # never pulled (or its discounted count underflowed): play it
            return Decision(action=counts.index(0.0), info={"initial": True, "counts": _r4(counts)})
        scale = self.c * math.log(max(sum(counts), 1.0))
        sqrt = math.sqrt
        means = [s / n for s, n in zip(self.sums, counts)]
        index = [m + sqrt(scale / n) for m, n in zip(means, counts)]
        a = index.index(max(index))
        return Decision(action=a, info={"index": _r4(index), "counts": _r4(counts), "means": _r4(means)})

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        g = self._g
        counts = [n * g for n in self.counts]
        sums = [s * g for s in self.sums]
        a = decision.action
        counts[a] += 1.0
        sums[a] += step.feedback["reward"]
        self.counts = counts
        self.sums = sums
