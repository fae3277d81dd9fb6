"""Why RMFT's k-lowest selection teaches early commitment on the Bernoulli bandit, without training.

    .venv/bin/python benchmarks/rmft_selection_bias.py [--tasks 400] [--episodes 4000] [--seed 1]

Numpy only (seconds). The benchmark's task: K=5 Bernoulli arms, T=100, best arm 0.6, others 0.4.

1. Which decision rule does a selector favour? Every rollout of a task plays one of several
   fixed rules at random (a greedy posterior-follower that commits early, UCB with a small,
   medium and large exploration constant, Thompson sampling, uniform). For each selector the
   table gives each rule's share of the kept rollouts divided by its share of all rollouts
   (> 1: the selector prefers it). Filtered imitation moves the policy towards what is kept,
   so this is the direction one RMFT iteration pushes in.
2. Which (mean, p90) pairs can policies reach at all? Index and softmax policies with and
   without pull counts, so the issue's target (mean <= Thompson's, p90 <= UCB1's) can be
   located on the frontier.
3. How often would a fixed policy meet the target on one master seed's held-out set (200
   episodes), just by the noise of that set? UCB at several exploration constants and KL-UCB.
"""

from __future__ import annotations

import argparse

import numpy as np

K, T, BEST, OTHER = 5, 100, 0.6, 0.4
GAP = BEST - OTHER


def worlds(n: int, rng, tasks: int | None = None):
    best = rng.integers(K, size=tasks) if tasks else rng.integers(K, size=n)
    if tasks:
        best = np.repeat(best, n // tasks)
    means = np.full((best.size, K), OTHER)
    means[np.arange(best.size), best] = BEST
    return best, rng.random((best.size, T, K)) < means[:, None, :]


def play(choose, best, draws, rng) -> np.ndarray:
    """Pseudo-regret of every episode under `choose(successes, pulls, t, rng) -> actions`."""
    n = best.size
    rows = np.arange(n)
    successes, pulls, regret = np.zeros((n, K)), np.zeros((n, K)), np.zeros(n)
    for t in range(T):
        action = choose(successes, pulls, t, rng)
        successes[rows, action] += draws[rows, t, action]
        pulls[rows, action] += 1
        regret += GAP * (action != best)
    return regret


def _tie(rng, shape):
    return 1e-9 * rng.random(shape)


def ucb(c: float):
    def choose(s, n, t, rng):
        mean = np.where(n > 0, s / np.maximum(n, 1), np.inf)
        return (mean + c * np.sqrt(np.log(t + 1) / np.maximum(n, 1)) + _tie(rng, s.shape)).argmax(1)
    return choose


def sample(logits, rng):
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (p.cumsum(1) < rng.random((p.shape[0], 1))).sum(1).clip(max=K - 1)


RULES = {
    "greedy posterior": lambda s, n, t, rng: (2 * s - n + _tie(rng, s.shape)).argmax(1),
    "ucb c=0.3": ucb(0.3),
    "ucb c=0.7": ucb(0.7),
    "ucb c=1.4": ucb(1.414),
    "thompson": lambda s, n, t, rng: rng.beta(s + 1, n - s + 1).argmax(1),
    "uniform": lambda s, n, t, rng: rng.integers(K, size=s.shape[0]),
}

FRONTIER = {
    **{f"ucb c={c}": ucb(c) for c in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 1.0, 1.414)},
    "thompson": RULES["thompson"],
    "greedy posterior": RULES["greedy posterior"],
    **{f"softmax of smoothed means, beta={b}": (lambda b: lambda s, n, t, rng: sample(b * (s + 0.5) / (n + 1), rng))(b)
       for b in (10, 20, 40)},
    **{f"softmax of sqrt(t) x smoothed means, beta={b}":
       (lambda b: lambda s, n, t, rng: sample(b * np.sqrt(t + 1) * (s + 0.5) / (n + 1), rng))(b) for b in (0.5, 1, 2)},
    **{f"softmax of UCB index c={c}, beta=50":
       (lambda c: lambda s, n, t, rng: sample(50 * ((s + 0.5) / (n + 1) + c * np.sqrt(np.log(t + 1) / (n + 1))), rng))(c)
       for c in (0.5, 0.7, 1.0)},
}


def selector_preferences(tasks: int, rollouts: int, rng) -> None:
    best, draws = worlds(tasks * rollouts, rng, tasks)
    names = list(RULES)
    rule = rng.integers(len(names), size=best.size)

    def choose(s, n, t, rng):
        return np.choose(rule, [RULES[name](s, n, t, rng) for name in names])

    regret = play(choose, best, draws, rng).reshape(tasks, rollouts)
    rules = rule.reshape(tasks, rollouts)
    rank = np.argsort(np.argsort(regret + 1e-6 * rng.random(regret.shape), 1), 1)
    selectors = {f"k={k}/{rollouts}": rank < k for k in (1, 3, 9, 15, 21, 27)}
    selectors["R <= 15"] = regret <= 15
    print(f"## 1. share kept / share played ({tasks} tasks x {rollouts} rollouts, one rule per rollout)\n")
    print("| rule | mean regret | p90 | " + " | ".join(selectors) + " |")
    print("|---" * (3 + len(selectors)) + "|")
    for i, name in enumerate(names):
        mine = rules == i
        cells = [f"{(mine & kept).sum() / kept.sum() / mine.mean():.2f}" for kept in selectors.values()]
        print(f"| {name} | {regret[mine].mean():.2f} | {np.quantile(regret[mine], 0.9):.2f} | " + " | ".join(cells) + " |")
    advantage_push(regret, rules, names)


def advantage_push(regret: np.ndarray, rules: np.ndarray, names: list[str]) -> None:
    """The advantage selector's net push per rule: the mean signed weight of its rollouts (> 0: towards it).

    Uses the loop's own selector (finetune._select.AdvantageWeighted) on the same rollouts.
    """
    import polars as pl

    from finetune._select import AdvantageWeighted, rank_episodes

    tasks, rollouts = regret.shape
    frame = pl.DataFrame({"run": "r", "agent": "a", "task_id": np.repeat(np.arange(tasks), rollouts).astype(str),
                          "rollout": np.tile(np.arange(rollouts), tasks), "final_regret": regret.ravel(),
                          "rule": rules.ravel()})
    aversions = (0.0, 0.3, 0.5, 1.0, 2.0)
    pushes = {a: rank_episodes(frame.lazy(), AdvantageWeighted(risk_aversion=a)).group_by("rule")
              .agg(pl.col("weight").mean()).collect() for a in aversions}
    print("\n### advantage selector: mean signed weight of each rule's rollouts, by risk_aversion\n")
    print("| rule | " + " | ".join(f"risk_aversion {a:g}" for a in aversions) + " |")
    print("|---" * (1 + len(aversions)) + "|")
    for i, name in enumerate(names):
        cells = [f"{push.filter(pl.col('rule') == i)['weight'].item():+.3f}" for push in pushes.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


def frontier(episodes: int, rng) -> None:
    best, draws = worlds(episodes, rng)
    print(f"\n## 2. reachable (mean, p90) on {episodes} episodes\n")
    print("| policy | reads pull counts | mean | median | p90 | P(R > 15.8) |")
    print("|---|---|---|---|---|---|")
    for name, choose in FRONTIER.items():
        regret = play(choose, best, draws, rng)
        counts = "no (means only)" if "smoothed means" in name else "yes"
        print(f"| {name} | {counts} | {regret.mean():.2f} | {np.median(regret):.2f} | {np.quantile(regret, 0.9):.2f} "
              f"| {(regret > 15.8).mean():.3f} |")


def kl_ucb(a: float):
    """KL-UCB: the largest q with n kl(mean, q) <= a ln t (bisection)."""
    def choose(s, n, t, rng):
        p = np.clip(np.where(n > 0, s / np.maximum(n, 1), 0.5), 1e-12, 1 - 1e-12)
        bound = a * np.log(t + 1) / np.maximum(n, 1)
        low, high = p.copy(), np.ones_like(p)
        for _ in range(20):
            q = np.clip((low + high) / 2, 1e-12, 1 - 1e-12)
            inside = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)) <= bound
            low, high = np.where(inside, q, low), np.where(inside, high, q)
        return (np.where(n > 0, low, np.inf) + _tie(rng, s.shape)).argmax(1)
    return choose


# the project's ucb1 agent: mean + sqrt(c ln t / n), i.e. ucb(sqrt(c)) here
CANDIDATES = {**{f"ucb1 c={c} (agent setting)": ucb(np.sqrt(c)) for c in (0.4, 0.45, 0.5, 0.55, 0.6)},
              **{f"kl-ucb a={a}": kl_ucb(a) for a in (1.0, 1.1)}}


def pass_probability(episodes: int, heldout: int, resamples: int, rng) -> None:
    """How often a fixed policy meets the target on one seed's held-out set of `heldout` episodes.

    Every policy plays the same `episodes` worlds and reward draws; each resample draws `heldout` of them
    (the same ones for every policy, as a seed's held-out instances are shared) and checks mean <= Thompson's
    and p90 <= UCB1's (the agent's default c=2) on that sample.
    """
    best, draws = worlds(episodes, rng)
    thompson = play(RULES["thompson"], best, draws, rng)
    ucb1 = play(ucb(np.sqrt(2.0)), best, draws, rng)
    print(f"\n## 3. chance of meeting the target on one seed ({heldout} held-out episodes, {resamples} resamples of "
          f"{episodes} shared episodes)\n")
    print(f"References on all {episodes}: thompson mean {thompson.mean():.2f}; ucb1 (c=2) p90 "
          f"{np.quantile(ucb1, 0.9):.2f}, P(R > 15.6) {(ucb1 > 15.6).mean():.3f}\n")
    print("| policy | mean | p90 | P(R > 15.6) | P(mean <= thompson's) | P(p90 <= ucb1's) | P(both) |")
    print("|---|---|---|---|---|---|---|")
    samples = rng.integers(episodes, size=(resamples, heldout))
    reference_mean = thompson[samples].mean(1)
    reference_p90 = np.quantile(ucb1[samples], 0.9, axis=1)
    for name, choose in CANDIDATES.items():
        regret = play(choose, best, draws, rng)
        mean_ok = regret[samples].mean(1) <= reference_mean
        p90_ok = np.quantile(regret[samples], 0.9, axis=1) <= reference_p90
        print(f"| {name} | {regret.mean():.2f} | {np.quantile(regret, 0.9):.2f} | {(regret > 15.6).mean():.3f} "
              f"| {mean_ok.mean():.2f} | {p90_ok.mean():.2f} | {(mean_ok & p90_ok).mean():.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--rollouts", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--heldout", type=int, default=200, help="section 3: held-out episodes of one seed")
    parser.add_argument("--resamples", type=int, default=2000, help="section 3: held-out sets drawn")
    parser.add_argument("--only-pass", action="store_true", help="run section 3 only")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    if not args.only_pass:
        selector_preferences(args.tasks, args.rollouts, rng)
        frontier(args.episodes, rng)
    pass_probability(2 * args.episodes, args.heldout, args.resamples, rng)


if __name__ == "__main__":
    main()
