"""Gymnasium-style checker: the same seed twice must give the same episode."""

from __future__ import annotations

from scenarios._base import Scenario, ScenarioSpec, make


def _play(env: Scenario, seed: int, policy_seed: int) -> list[tuple]:
    import numpy as np

    rng = np.random.default_rng(policy_seed)
    obs = env.reset(seed)
    trace = [("reset", obs)]
    done = False
    while not done:
        step = env.step(env.sample_action(rng))
        trace.append((step.t, step.reward, step.regret, step.optimal_action, dict(step.feedback), step.observation))
        done = step.done
    return trace


def check_scenario(spec: ScenarioSpec, seed: int = 0, policy_seed: int = 0) -> None:
    """Replay `seed` twice (on one instance and on a fresh one) and assert identical episodes.

    Raises AssertionError naming the first round that differs.
    """
    first = make(spec)
    traces = [_play(first, seed, policy_seed), _play(first, seed, policy_seed), _play(make(spec), seed, policy_seed)]
    for other in traces[1:]:
        for index, (a, b) in enumerate(zip(traces[0], other)):
            if a != b:
                raise AssertionError(f"{spec.family}: seed {seed} replay differs at entry {index}: {a} != {b}")
        assert len(traces[0]) == len(other), f"{spec.family}: replay lengths differ"
