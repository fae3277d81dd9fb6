"""Scenario families: hand-computed regret, common random numbers, errors, instance variety."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scenarios import (
    SCENARIOS,
    ScenarioError,
    ScenarioSpec,
    UnknownNameError,
    check_scenario,
    list_scenarios,
    make,
)
from scenarios.experts import LOSS_SEQUENCES


def play(env, seed, actions):
    """Reset with `seed`, play `actions` (indices or policy vectors); return the steps."""
    env.reset(seed)
    return [env.step(a) for a in actions]


# --- hand-computed regret -----------------------------------------------------------------
def test_bernoulli_pseudo_regret_by_hand():
    env = make("bandit/bernoulli", {"means": (0.2, 0.5, 0.8), "horizon": 6})
    steps = play(env, 3, [0, 1, 2, 2, 1, 0])
    # gaps to the best mean 0.8: arm 0 -> 0.6, arm 1 -> 0.3, arm 2 -> 0
    assert [s.regret for s in steps] == pytest.approx([0.6, 0.3, 0.0, 0.0, 0.3, 0.6])
    assert sum(s.regret for s in steps) == pytest.approx(1.8)
    assert all(s.optimal_action == 2 for s in steps)
    assert all(s.reward in (0.0, 1.0) and s.feedback == {"reward": s.reward} for s in steps)
    assert [s.t for s in steps] == list(range(6))
    assert [s.done for s in steps] == [False] * 5 + [True]
    assert steps[-1].observation is None and steps[0].observation.t == 1


def test_gaussian_pseudo_regret_by_hand():
    env = make("bandit/gaussian", {"means": (1.0, -0.5, 0.25), "horizon": 4, "noise": 0.5})
    steps = play(env, 0, [1, 2, 0, 1])
    assert [s.regret for s in steps] == pytest.approx([1.5, 0.75, 0.0, 1.5])
    assert sum(s.regret for s in steps) == pytest.approx(3.75)
    assert env.summary() == {"means": [1.0, -0.5, 0.25], "best_arm": 0}


def test_gaussian_rewards_are_mean_plus_noise_with_zero_noise():
    env = make("bandit/gaussian", {"means": (0.3, -0.2), "horizon": 3, "noise": 0.0})
    steps = play(env, 1, [0, 1, 0])
    assert [s.reward for s in steps] == pytest.approx([0.3, -0.2, 0.3])


def test_nonstationary_abrupt_dynamic_regret_and_variation_by_hand():
    env = make("bandit/nonstationary",
               {"n_arms": 3, "horizon": 20, "mode": "abrupt", "variation_budget": 0.8, "gap": 0.4}, 5)
    means = env.means.tolist()
    # abrupt instances: one arm at 0.5 + gap/2 = 0.7, the others at 0.3, in every round
    for row in means:
        assert sorted(row) == pytest.approx([0.3, 0.3, 0.7])
    best = [row.index(max(row)) for row in means]
    # round(0.8 / 0.4) = 2 switches, at the evenly spaced bounds int(linspace(0, 20, 4)) = 0, 6, 13, 20
    assert [t for t in range(1, 20) if best[t] != best[t - 1]] == [6, 13]
    actions = [t % 3 for t in range(20)]
    steps = play(env, 2, actions)
    for t, (a, s) in enumerate(zip(actions, steps)):
        assert s.regret == pytest.approx(max(means[t]) - means[t][a])
        assert s.regret == pytest.approx(0.0 if a == best[t] else 0.4)
        assert s.optimal_action == best[t]
    mistakes = sum(a != b for a, b in zip(actions, best))
    assert sum(s.regret for s in steps) == pytest.approx(0.4 * mistakes)
    # total variation V_T = sum_t max_a |mu_{t+1,a} - mu_{t,a}|, by plain loops
    variation = sum(max(abs(means[t + 1][a] - means[t][a]) for a in range(3)) for t in range(19))
    assert variation == pytest.approx(0.8)
    assert env.summary()["variation"] == pytest.approx(variation)
    assert env.summary()["best_arm_changes"] == [6, 13]


def test_nonstationary_drift_variation_and_regret_by_hand():
    env = make("bandit/nonstationary", {"n_arms": 4, "horizon": 50, "mode": "drift",
                                        "variation_budget": 2.0, "amplitude": 0.3}, 1)
    means = env.means.tolist()
    variation = sum(max(abs(means[t + 1][a] - means[t][a]) for a in range(4)) for t in range(49))
    assert env.summary()["variation"] == pytest.approx(variation, abs=1e-6)
    assert all(0.2 - 1e-12 <= m <= 0.8 + 1e-12 for row in means for m in row)
    steps = play(env, 0, [0] * 50)
    assert sum(s.regret for s in steps) == pytest.approx(sum(max(row) - row[0] for row in means))


def _hand_external_regret(loss_rows, played):
    """sum_t <p_t, l_t> - min_i sum_t l_{t,i}, with p_t one-hot for an index."""
    n = len(loss_rows[0])
    agent = 0.0
    for row, choice in zip(loss_rows, played):
        probs = [1.0 if i == choice else 0.0 for i in range(n)] if isinstance(choice, int) else choice
        agent += sum(p * x for p, x in zip(probs, row))
    best = min(sum(row[i] for row in loss_rows) for i in range(n))
    return agent - best


@pytest.mark.parametrize("sequence", LOSS_SEQUENCES)
def test_experts_external_regret_by_hand(sequence):
    env = make("experts/full-info", {"n_experts": 3, "horizon": 8, "losses": sequence}, 4)
    played = [[0.5, 0.3, 0.2] if t % 2 == 0 else 1 for t in range(8)]
    steps = play(env, 9, played)
    rows = [list(s.feedback["losses"]) for s in steps]
    assert rows == env._losses.tolist()
    assert all(0.0 <= x <= 1.0 for row in rows for x in row)
    # every prefix: the cumulative step regret is R_t against the best expert up to t
    for t in range(1, 9):
        assert sum(s.regret for s in steps[:t]) == pytest.approx(_hand_external_regret(rows[:t], played[:t]))
    for s, row, choice in zip(steps, rows, played):
        expected_loss = row[choice] if isinstance(choice, int) else sum(p * x for p, x in zip(choice, row))
        assert s.reward == pytest.approx(-expected_loss)
    best_expert = min(range(3), key=lambda i: (sum(row[i] for row in rows), i))
    assert all(s.optimal_action == best_expert for s in steps)


def test_ftl_adversarial_losses_have_the_alternating_form():
    horizon, n = 7, 4
    env = make("experts/full-info", {"n_experts": n, "horizon": horizon, "losses": "ftl-adversarial"}, 0)
    env.reset(0)
    expected = [[0.5, 0.0, 1.0, 1.0]]
    for t in range(1, horizon):
        expected.append([0.0, 1.0, 1.0, 1.0] if t % 2 == 1 else [1.0, 0.0, 1.0, 1.0])
    assert env._losses.tolist() == expected
    # follow-the-leader (lowest cumulative loss, ties to the lowest index) loses every round
    cumulative = [0.0] * n
    steps = []
    for t in range(horizon):
        leader = min(range(n), key=lambda i: (cumulative[i], i))
        step = env.step(leader)
        steps.append(step)
        cumulative = [c + x for c, x in zip(cumulative, step.feedback["losses"])]
    ftl_loss = sum(-s.reward for s in steps)
    assert ftl_loss == pytest.approx(0.5 + (horizon - 1))
    assert sum(s.regret for s in steps) == pytest.approx(ftl_loss - min(cumulative))
    assert min(cumulative) == pytest.approx(3.0)  # expert 1: 0, then 1 on the 3 odd rounds


def test_contextual_linear_regret_by_hand():
    env = make("contextual/linear", {"n_arms": 3, "horizon": 12, "dim": 4, "noise": 0.1}, 2)
    theta = env.theta
    assert theta.shape == (3, 4)
    assert np.linalg.norm(theta, axis=1) == pytest.approx(np.ones(3))
    obs = env.reset(6)
    total = 0.0
    for t in range(12):
        x = obs.context
        assert obs.t == t and len(x) == 4
        assert all(round(v, 4) == v for v in x)  # the exact numbers an LLM is shown
        values = [sum(theta[a][j] * x[j] for j in range(4)) for a in range(3)]
        action = (t * 2) % 3
        step = env.step(action)
        assert step.regret == pytest.approx(max(values) - values[action], abs=1e-12)
        assert step.optimal_action == values.index(max(values))
        total += max(values) - values[action]
        obs = step.observation
    assert obs is None
    assert step.done


# --- checker and common random numbers ----------------------------------------------------
ALL_SPECS = [
    ScenarioSpec("bandit/bernoulli", {"n_arms": 4, "horizon": 30}, 1),
    ScenarioSpec("bandit/bernoulli", {"means": (0.1, 0.9), "horizon": 10}, 0),
    ScenarioSpec("bandit/gaussian", {"n_arms": 3, "horizon": 25}, 2),
    ScenarioSpec("bandit/nonstationary", {"n_arms": 3, "horizon": 40, "mode": "abrupt"}, 3),
    ScenarioSpec("bandit/nonstationary", {"n_arms": 3, "horizon": 40, "mode": "drift"}, 3),
    ScenarioSpec("contextual/linear", {"n_arms": 3, "horizon": 20, "dim": 2}, 4),
    *[ScenarioSpec("experts/full-info", {"n_experts": 3, "horizon": 15, "losses": s}, 5) for s in LOSS_SEQUENCES],
]


# answer scenarios (free-text actions): replayed by the checker with their own random replies
ANSWER_SPECS = [
    ScenarioSpec("self-correction/arithmetic", {"turns": 4}, 1),
    ScenarioSpec("self-correction/arithmetic", {"turns": 6, "oracle": True, "steps": 3}, 2),
]


def test_every_builtin_family_is_covered():
    # built-in: defined in the scenarios package (test-only families such as tests/toy_answer.py register too)
    builtin = {name for name in list_scenarios() if SCENARIOS.get(name).__module__.startswith("scenarios.")}
    file_families = {"self-correction/gsm8k", "self-correction/math"}  # need a file: tests/test_self_correction.py
    answer_families = {"graph/shortest-path"}  # free-form answers, checked in tests/test_graph.py
    assert {s.family for s in ALL_SPECS + ANSWER_SPECS} | file_families | answer_families == builtin
    assert len(builtin) >= 5


@pytest.mark.parametrize("spec", ANSWER_SPECS, ids=lambda s: f"{s.family}:{dict(s.params)}")
def test_check_answer_scenario_passes(spec):
    for seed in range(5):
        check_scenario(spec, seed=seed, policy_seed=seed)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.family}:{dict(s.params)}")
def test_check_scenario_passes(spec):
    check_scenario(spec)
    check_scenario(spec, seed=11, policy_seed=3)


def _outcome_table(spec, seed, actions):
    env = make(spec)
    steps = play(env, seed, actions)
    return [(s.feedback.get("reward"), tuple(s.feedback.get("losses", ()))) for s in steps]


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.family}:{dict(s.params)}")
def test_common_random_numbers_whatever_the_actions(spec):
    env = make(spec)
    horizon, k = env.horizon, env.n_actions
    first = [0] * horizon
    second = [int(a) for a in np.random.default_rng(123).integers(k, size=horizon)]
    a = play(env, 7, first)  # the same instance, reset twice
    b = play(env, 7, second)
    shared = [t for t in range(horizon) if first[t] == second[t]]
    assert shared, "the two action sequences should share some rounds"
    for t in shared:
        assert a[t].feedback == b[t].feedback
        assert a[t].reward == b[t].reward
        assert a[t].regret == b[t].regret
    # the world itself does not depend on the actions: contexts and (experts) all losses agree
    for sa, sb in zip(a, b):
        assert sa.observation == sb.observation
        assert sa.optimal_action == sb.optimal_action
        if env.kind == "experts":
            assert sa.feedback == sb.feedback
    # a fresh instance with the same spec and seed gives the same rewards
    assert _outcome_table(spec, 7, second) == [(s.feedback.get("reward"), tuple(s.feedback.get("losses", ())))
                                               for s in b]


def test_different_episode_seeds_give_different_outcomes():
    env = make("bandit/bernoulli", {"means": (0.5, 0.5), "horizon": 50})
    r1 = [s.reward for s in play(env, 1, [0] * 50)]
    r2 = [s.reward for s in play(env, 2, [0] * 50)]
    assert r1 != r2


# --- errors -------------------------------------------------------------------------------
def test_unknown_family_suggests_the_close_name():
    with pytest.raises(UnknownNameError) as info:
        make("bandit/bernouli")
    assert "'bandit/bernoulli'" in str(info.value)
    assert "did you mean" in str(info.value)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_unknown_family_via_spec():
    with pytest.raises(UnknownNameError, match="experts/full-info"):
        make(ScenarioSpec("experts/full-infos"))


@pytest.mark.parametrize("family, bad, good", [
    ("bandit/bernoulli", "n_arm", "n_arms"),
    ("bandit/gaussian", "horizn", "horizon"),
    ("experts/full-info", "n_expert", "n_experts"),
    ("contextual/linear", "dims", "dim"),
    ("bandit/nonstationary", "variation", "variation_budget"),
])
def test_unknown_parameter_suggests_the_right_one(family, bad, good):
    with pytest.raises(ScenarioError) as info:
        make(family, {bad: 3})
    message = str(info.value)
    assert repr(bad) in message and f"did you mean {good!r}" in message and family in message


@pytest.mark.parametrize("family, params, words", [
    ("bandit/bernoulli", {"horizon": -5}, "horizon"),
    ("bandit/bernoulli", {"horizon": 0}, "horizon"),
    ("bandit/gaussian", {"horizon": -1}, "horizon"),
    ("bandit/nonstationary", {"horizon": -3}, "horizon"),
    ("contextual/linear", {"horizon": -2}, "horizon"),
    ("experts/full-info", {"horizon": -10}, "horizon"),
    ("bandit/bernoulli", {"gap": 1.5}, "gap"),
    ("bandit/bernoulli", {"gap": 0.0}, "gap"),
    ("bandit/bernoulli", {"gap": -0.2}, "gap"),
    ("bandit/nonstationary", {"gap": 2.0}, "gap"),
    ("bandit/bernoulli", {"n_arms": 1}, "n_arms"),
    ("bandit/gaussian", {"n_arms": 1}, "n_arms"),
    ("bandit/nonstationary", {"n_arms": 1}, "n_arms"),
    ("contextual/linear", {"n_arms": 1}, "n_arms"),
    ("experts/full-info", {"n_experts": 1}, "n_experts"),
    ("bandit/bernoulli", {"means": (0.5,)}, "at least 2"),
    ("bandit/bernoulli", {"means": (0.5, 1.5)}, "[0, 1]"),
    ("experts/full-info", {"losses": "sawtooth"}, "losses"),
    ("bandit/nonstationary", {"mode": "jumpy"}, "mode"),
    ("bandit/gaussian", {"sigma": 0.0}, "sigma"),
    ("contextual/linear", {"dim": 0}, "dim"),
])
def test_bad_parameters_raise_scenario_error_naming_the_problem(family, params, words):
    with pytest.raises(ScenarioError) as info:
        make(family, params)
    assert words in str(info.value) and family in str(info.value)


@pytest.mark.parametrize("family, params, words", [
    ("bandit/bernoulli", {"horizon": "100"}, "'horizon' must be an integer"),
    ("bandit/bernoulli", {"n_arms": 2.5}, "'n_arms' must be an integer"),
    ("bandit/gaussian", {"horizon": None}, "'horizon' must be an integer"),
    ("bandit/gaussian", {"noise": "low"}, "'noise' must be a number"),
    ("bandit/bernoulli", {"means": "0.2,0.8"}, "'means' must be a list of numbers"),
    ("experts/full-info", {"losses": 3}, "'losses' must be a string"),
    ("contextual/linear", {"dim": True}, "'dim' must be an integer"),
])
def test_wrongly_typed_parameters_raise_scenario_error(family, params, words):
    with pytest.raises(ScenarioError, match=words):
        make(family, params)


def test_list_parameters_become_tuples():
    env = make("bandit/bernoulli", {"means": [0.2, 0.8]})
    assert env.params.means == (0.2, 0.8)
    assert make("bandit/gaussian", {"means": None, "sigma": 2}).n_actions == 5


def test_unknown_loss_sequence_lists_the_known_ones():
    with pytest.raises(ScenarioError, match="ftl-adversarial"):
        make("experts/full-info", {"losses": "sawtooth"})


def test_negative_seeds_are_rejected():
    with pytest.raises(ScenarioError, match="instance seed"):
        make("bandit/bernoulli", {}, -1)
    env = make("bandit/bernoulli")
    with pytest.raises(ScenarioError, match="episode seed"):
        env.reset(-1)


@pytest.mark.parametrize("action", [3, -1, 10])
def test_invalid_action_index(action):
    env = make("bandit/bernoulli", {"n_arms": 3, "horizon": 5})
    env.reset(0)
    with pytest.raises(ScenarioError, match="out of range 0..2"):
        env.step(action)


def test_bandits_reject_policies_and_non_integers():
    env = make("bandit/bernoulli", {"n_arms": 3, "horizon": 5})
    env.reset(0)
    for bad in ([0.5, 0.5, 0.0], 1.0, True, "1"):
        with pytest.raises(ScenarioError, match="action index"):
            env.step(bad)


def test_experts_policy_validation():
    env = make("experts/full-info", {"n_experts": 3, "horizon": 5})
    env.reset(0)
    with pytest.raises(ScenarioError, match="sum to 1"):
        env.step([0.5, 0.2, 0.2])
    with pytest.raises(ScenarioError, match="negative"):
        env.step([1.5, -0.5, 0.0])
    with pytest.raises(ScenarioError, match="non-finite"):
        env.step([float("nan"), 0.5, 0.5])
    with pytest.raises(ScenarioError, match="3 entries"):
        env.step([0.5, 0.5])
    with pytest.raises(ScenarioError, match="out of range"):
        env.step(3)
    # none of the rejected actions used up a round
    assert env.step([0.2, 0.3, 0.5]).t == 0


def test_step_before_reset():
    env = make("bandit/gaussian")
    with pytest.raises(ScenarioError, match=r"reset\(seed\)"):
        env.step(0)


def test_step_after_the_horizon():
    env = make("experts/full-info", {"horizon": 2})
    play(env, 0, [0, 1])
    with pytest.raises(ScenarioError, match="episode is over.*horizon 2"):
        env.step(0)
    env.reset(0)  # a new episode starts cleanly
    assert env.step(0).t == 0


# --- instances ------------------------------------------------------------------------------
def test_instance_seeds_give_different_worlds():
    best_arms = {make("bandit/bernoulli", {"n_arms": 5}, seed).summary()["best_arm"] for seed in range(30)}
    assert len(best_arms) >= 3
    gaussian = {tuple(make("bandit/gaussian", {}, seed).summary()["means"]) for seed in range(5)}
    assert len(gaussian) == 5
    thetas = [make("contextual/linear", {}, seed).theta for seed in range(3)]
    assert not np.allclose(thetas[0], thetas[1])
    assert make("bandit/bernoulli", {}, 4).summary() == make("bandit/bernoulli", {}, 4).summary()


@pytest.mark.parametrize("n_arms, gap", [(2, 0.2), (5, 0.2), (5, 0.5), (10, 1.0)])
def test_bernoulli_means_follow_the_banditbench_gap_rule(n_arms, gap):
    for seed in range(5):
        env = make("bandit/bernoulli", {"n_arms": n_arms, "gap": gap}, seed)
        means = env.means.tolist()
        best = means.index(max(means))
        assert means[best] == pytest.approx(0.5 + gap / 2)
        assert [m for i, m in enumerate(means) if i != best] == pytest.approx([0.5 - gap / 2] * (n_arms - 1))
        assert env.summary()["best_arm"] == best


def test_explicit_means_override_n_arms():
    env = make("bandit/bernoulli", {"means": (0.1, 0.4, 0.3, 0.2), "n_arms": 2})
    assert env.n_actions == 4 and env.summary()["best_arm"] == 1


def test_import_scenarios_stays_light():
    code = ("import sys, scenarios; scenarios.get_framing('buttons'); "
            "heavy = {'torch', 'litellm', 'polars', 'transformers', 'langchain_core', 'pandas'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("n_arms", [2, 3, 5, 8])
def test_nonstationary_drift_meets_the_variation_budget_for_any_k(n_arms):
    """The realised V_T = sum_t max_a |mu_{t+1,a} - mu_{t,a}| matches the budget (it was 3.09 for 2 at K=5)."""
    for seed in range(5):
        env = make("bandit/nonstationary", {"n_arms": n_arms, "horizon": 2000, "mode": "drift",
                                            "variation_budget": 2.0}, seed)
        assert env.variation() == pytest.approx(2.0, rel=1e-3)
        assert env.summary()["variation"] == pytest.approx(2.0, rel=1e-3)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -float("inf")])
def test_non_finite_parameters_are_refused(value):
    with pytest.raises(ScenarioError, match="must be a finite number"):
        make("bandit/gaussian", {"n_arms": 3, "sigma": value}, 0)
    with pytest.raises(ScenarioError, match="finite numbers"):
        make("bandit/gaussian", {"n_arms": 2, "means": [0.0, value]}, 0)
