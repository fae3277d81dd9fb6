"""The numeric Transformer policy (torch:PATH) and the torch fine-tuning backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")

from agents import resolve  # noqa: E402
from agents.torch_policy import NumpyPolicy, PolicyConfig, history_features, load_module, softmax  # noqa: E402
from finetune._select import KLowestRegret, select_decisions, select_episodes  # noqa: E402
from finetune.backends import BackendError, TrainingSet, get_backend, make_config  # noqa: E402
from harness._plan import parse_suite  # noqa: E402
from harness._runner import run_plan  # noqa: E402
from harness._store import load_run  # noqa: E402

BANDIT = {"family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 20, "gap": 0.4}, "instances": 2}
EXPERTS = {"family": "experts/full-info", "params": {"n_experts": 3, "horizon": 15, "losses": "gaussian"}, "instances": 2}


def _plan(scenario, rollouts=4, agents=()):
    return parse_suite({"agents": list(agents), "rollouts": rollouts, "scenarios": [scenario]})


def _new_policy(tmp_path: Path, scenario=BANDIT, **shape):
    return get_backend("torch").initial_checkpoint("torch:new", shape, None, tmp_path / "init", plan=_plan(scenario))


def _run(checkpoint, scenario, directory, rollouts=4, **params):
    plan = _plan(scenario, rollouts).replace(agents=(checkpoint.agent_spec("policy").__class__(
        checkpoint.agent, {**checkpoint.params, **params}, "policy"),))
    result = run_plan(plan, directory)
    assert result.failed == 0, result.errors
    decisions, episodes = load_run(directory)
    return decisions.collect(), episodes.collect()


def _training_set(decisions, episodes, directory, k=2):
    kept = select_episodes(episodes.lazy(), KLowestRegret(k=k)).with_columns(weight=pl.lit(1.0)).collect()
    rows = select_decisions(decisions.lazy(), kept).collect()
    return TrainingSet(kept, rows, directory)


def test_untrained_policy_is_exactly_uniform(tmp_path):
    checkpoint = _new_policy(tmp_path)
    policy = NumpyPolicy.load(checkpoint.path)
    cache = policy.start(20)
    rng = np.random.default_rng(0)
    for _ in range(5):
        probs = softmax(policy.step(cache, rng.normal(size=policy.config.n_features)))
        assert probs.tolist() == [1 / 3] * 3
    module, config = load_module(checkpoint.path)
    with torch.no_grad():
        logits = module(history_features(config, torch.randint(0, 3, (2, 20)), torch.rand(2, 20), None))
    assert torch.count_nonzero(logits) == 0


def test_numpy_inference_matches_torch(tmp_path):
    checkpoint = _new_policy(tmp_path, n_layers=2)
    module, config = load_module(checkpoint.path)
    torch.nn.init.normal_(module.head.weight)  # a non-trivial head
    from agents.torch_policy import save_policy

    save_policy(module, config, tmp_path / "random")
    actions, rewards = torch.randint(0, 3, (1, 20)), torch.rand(1, 20)
    features = history_features(config, actions, rewards, None)
    with torch.no_grad():
        expected = module(features)[0].numpy()
    policy = NumpyPolicy.load(tmp_path / "random")
    cache = policy.start(20)
    got = np.stack([policy.step(cache, features[0, j].numpy().astype(float)) for j in range(20)])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_numpy_inference_matches_torch_for_experts_with_random_weights(tmp_path):
    checkpoint = _new_policy(tmp_path, EXPERTS)
    module, config = load_module(checkpoint.path)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.5)  # every path non-trivial, the per-expert statistics included
    from agents.torch_policy import save_policy

    save_policy(module, config, tmp_path / "random")
    losses = torch.rand(1, 15, 3)
    features = history_features(config, torch.zeros(1, 15, dtype=torch.long), torch.zeros(1, 15), losses)
    with torch.no_grad():
        expected = module(features)[0].numpy()
    assert np.ptp(expected, axis=1).max() > 0.01  # the logits differ between experts
    policy = NumpyPolicy.load(tmp_path / "random")
    cache = policy.start(15)
    got = np.stack([policy.step(cache, features[0, j].numpy().astype(float)) for j in range(15)])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_checkpoint_plays_through_the_runner_as_torch_path(tmp_path):
    checkpoint = _new_policy(tmp_path)
    assert checkpoint.agent == f"torch:{tmp_path / 'init'}"
    decisions, episodes = _run(checkpoint, BANDIT, tmp_path / "run")
    assert episodes.height == 8 and set(episodes["status"]) == {"finished"}
    probs = json.loads(decisions["info"][0])["probs"]
    assert probs == [pytest.approx(1 / 3, abs=1e-4)] * 3
    assert decisions["action"].n_unique() == 3  # sampled, not argmax
    again, _ = _run(checkpoint, BANDIT, tmp_path / "run2")
    assert decisions["action"].to_list() == again["action"].to_list()  # the episode seed fixes the samples


def test_experts_sample_or_play_the_policy(tmp_path):
    checkpoint = _new_policy(tmp_path, EXPERTS)
    sampled, _ = _run(checkpoint, EXPERTS, tmp_path / "sample")
    assert sampled["action"].null_count() == 0
    played, _ = _run(checkpoint, EXPERTS, tmp_path / "policy", play="policy")
    assert played["action"].null_count() == played.height
    assert json.loads(played["policy"][0]) == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("scenario", [BANDIT, EXPERTS], ids=["bandit", "experts"])
def test_fit_raises_the_likelihood_of_kept_actions(tmp_path, scenario):
    checkpoint = _new_policy(tmp_path, scenario)
    decisions, episodes = _run(checkpoint, scenario, tmp_path / "run", rollouts=6)
    dataset = _training_set(decisions, episodes, tmp_path)
    backend = get_backend("torch")
    config = make_config(backend, {"epochs": 30, "learning_rate": 0.01, "permute_actions": False},
                         output_dir=str(tmp_path / "fit"), seed=1)
    trained = backend.fit(checkpoint.path, dataset, config)
    assert trained.agent == f"torch:{tmp_path / 'fit'}"
    assert trained.metrics["examples"] == 4.0  # k=2 of each of 2 tasks
    assert trained.metrics["final_loss"] < trained.metrics["initial_loss"] - 0.05
    before, _ = load_module(checkpoint.path)
    after, _ = load_module(trained.path)
    assert not torch.equal(before.head.weight, after.head.weight)
    # deterministic with seeds
    again = backend.fit(checkpoint.path, dataset, make_config(backend, {"epochs": 30, "learning_rate": 0.01,
                        "permute_actions": False}, output_dir=str(tmp_path / "fit2"), seed=1))
    assert again.metrics["final_loss"] == trained.metrics["final_loss"]
    resolve(trained.agent)  # the trained checkpoint resolves as an agent


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not a policy checkpoint"):
        resolve(f"torch:{tmp_path / 'missing'}")
    checkpoint = _new_policy(tmp_path)
    with pytest.raises(ValueError, match="play must be"):
        resolve(checkpoint.agent_spec().__class__(checkpoint.agent, {"play": "greedy"}))
    backend = get_backend("torch")
    with pytest.raises(BackendError, match="unknown setting 'epoch'; did you mean 'epochs'"):
        make_config(backend, {"epoch": 3})
    # a 3-action policy on a 5-arm bandit fails its episodes with a message naming the mismatch
    plan = _plan({"family": "bandit/bernoulli", "params": {"n_arms": 5, "horizon": 10}}, 1)
    result = run_plan(plan.replace(agents=(checkpoint.agent_spec("p"),)), tmp_path / "mismatch")
    assert result.failed == 1 and "plays 3 actions, the scenario has 5" in result.errors[0]
    with pytest.raises(ValueError, match="d_model"):
        PolicyConfig(d_model=30, n_heads=4)


def test_temperature_divides_the_logits_and_is_checked(tmp_path):
    checkpoint = _new_policy(tmp_path)
    module, config = load_module(checkpoint.path)
    torch.nn.init.normal_(module.head.weight)
    torch.nn.init.normal_(module.head.bias)
    from agents.torch_policy import save_policy

    save_policy(module, config, tmp_path / "random")
    spec = checkpoint.agent_spec()
    runs = {}
    for temperature in (1.0, 3.0):
        agent_spec = spec.__class__(f"torch:{tmp_path / 'random'}", {"temperature": temperature}, "p")
        plan = _plan(BANDIT, 1).replace(agents=(agent_spec,))
        assert run_plan(plan, tmp_path / f"t{temperature}").failed == 0
        decisions, _ = load_run(tmp_path / f"t{temperature}")
        runs[temperature] = np.array([json.loads(x)["probs"] for x in decisions.collect()["info"]])
    cold, hot = runs[1.0], runs[3.0]
    # p_hot = softmax(log p_cold / 3), row by row (probabilities are logged to 4 decimals)
    expected = cold ** (1 / 3) / (cold ** (1 / 3)).sum(1, keepdims=True)
    np.testing.assert_allclose(hot[:5], expected[:5], atol=2e-3)
    assert hot.max(1).mean() < cold.max(1).mean()
    for bad in (0, -1.0, "hot", True):
        with pytest.raises(ValueError, match="temperature must be a number > 0"):
            resolve(spec.__class__(checkpoint.agent, {"temperature": bad}))


def test_bandit_arm_counts_reach_the_scorer_only_when_asked(tmp_path):
    actions, rewards = torch.randint(0, 3, (1, 20)), torch.rand(1, 20)
    for arm_counts in (False, True):
        checkpoint = _new_policy(tmp_path / str(arm_counts), arm_counts=arm_counts)
        module, config = load_module(checkpoint.path)
        assert config.arm_counts is arm_counts and config.uses_counts is arm_counts
        stats = module.statistics(history_features(config, actions, rewards, None))
        count_columns = stats[..., 5:9]  # pull fraction, 1/sqrt(pulls), bonus, cumulative gap
        assert bool(count_columns.abs().sum() > 0) is arm_counts
        # numpy inference reads the same statistics
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.normal_(0, 0.5)
        from agents.torch_policy import save_policy

        save_policy(module, config, tmp_path / f"random-{arm_counts}")
        features = history_features(config, actions, rewards, None)
        with torch.no_grad():
            expected = module(features)[0].numpy()
        policy = NumpyPolicy.load(tmp_path / f"random-{arm_counts}")
        cache = policy.start(20)
        got = np.stack([policy.step(cache, features[0, j].numpy().astype(float)) for j in range(20)])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
