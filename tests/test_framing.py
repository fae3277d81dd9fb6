"""Framings: every story renders every scenario kind, hides the hidden facts, and is deterministic."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import scenarios
from scenarios import Framing, UnknownNameError, get_framing, list_framings, make
from scenarios.framing import ANSWER_PREFIX, FRAMINGS, format_exact, format_number, summary_text

REQUIRED = {"buttons", "slot-machines", "ad-placement", "clinical-trial", "restaurants", "numeric"}

SPECS = [
    ("bandit/bernoulli", {"n_arms": 3, "horizon": 6}),
    ("bandit/gaussian", {"n_arms": 4, "horizon": 6}),
    ("bandit/nonstationary", {"n_arms": 3, "horizon": 6}),
    ("contextual/linear", {"n_arms": 3, "horizon": 6, "dim": 3}),
    ("experts/full-info", {"n_experts": 3, "horizon": 6}),
]


def render_episode(framing: Framing, family: str, params: dict, instance_seed: int = 0, seed: int = 0) -> list[str]:
    """Every text a framing produces over one episode, played with a fixed action pattern."""
    env = make(family, params, instance_seed)
    obs = env.reset(seed)
    texts = [framing.describe(env), framing.answer_instructions(env.kind),
             framing.answer_instructions(env.kind, reasoning=False, n_options=env.n_actions)]
    counts = [0] * env.n_actions
    sums = [0.0] * env.n_actions
    losses = [0.0] * env.n_actions
    done = False
    while not done:
        texts.append(framing.round_text(obs.t, env.horizon, obs.context))
        t = obs.t
        if env.kind == "experts" and t % 2 == 1:
            policy = [1.0 / env.n_actions] * env.n_actions
            step = env.step(policy)
            texts.append(framing.feedback_text(t, policy=policy, feedback=step.feedback))
        else:
            action = t % env.n_actions
            step = env.step(action)
            texts.append(framing.feedback_text(t, action=action, feedback=step.feedback))
            counts[action] += 1
            sums[action] += step.reward
        if env.kind == "experts":
            losses = [c + x for c, x in zip(losses, step.feedback["losses"])]
        done, obs = step.done, step.observation
    if env.kind == "experts":
        texts.append(summary_text(framing, "experts", env.n_actions, counts, losses))
    else:
        means = [s / c if c else None for s, c in zip(sums, counts)]
        texts.append(summary_text(framing, env.kind, env.n_actions, counts, means))
    return texts


def test_required_framings_are_registered():
    assert REQUIRED <= set(list_framings())
    assert list_framings() == sorted(list_framings())
    assert set(scenarios.list_framings()) == set(FRAMINGS.names())
    for name in REQUIRED:
        framing = get_framing(name)
        assert isinstance(framing, Framing) and framing.name == name
    assert get_framing(get_framing("buttons")) is get_framing("buttons")


@pytest.mark.parametrize("name", sorted(REQUIRED))
@pytest.mark.parametrize("family, params", SPECS, ids=[s[0] for s in SPECS])
def test_every_framing_renders_every_kind(name, family, params):
    framing = get_framing(name)
    env = make(family, params)
    texts = render_episode(framing, family, params)
    assert all(isinstance(t, str) and t.strip() for t in texts)
    description = texts[0]
    assert framing.option_noun in description
    for option in framing.option_names(env.n_actions):
        assert option in description
    listed = ", ".join(framing.option_names(env.n_actions))
    assert f"There are {env.n_actions} {framing.option_plural}: {listed}." in description
    assert f"{env.horizon} rounds" in description
    if env.kind == "experts":
        assert "probability distribution" in description and framing.loss_noun in description
        assert "minimise" in description
        assert "JSON" in texts[1]
    else:
        assert "only" in description and "maximise" in description  # bandit feedback
        assert framing.reward_noun in description
    if env.kind == "contextual":
        assert framing.context_noun in description and "3 numbers" in description
    assert ANSWER_PREFIX in texts[1] and ANSWER_PREFIX in texts[2]
    assert texts[3].startswith(f"Round 1 of {env.horizon}.")
    for text in description, *texts[3:]:
        assert "regret" not in text.lower()
        assert "best" not in text.lower() or env.kind == "contextual"


def test_description_never_reveals_the_means():
    env = make("bandit/bernoulli", {"means": (0.23, 0.71), "horizon": 40})
    for name in list_framings():
        framing = get_framing(name)
        text = framing.describe(env) + framing.answer_instructions("bandit")
        for hidden in ("0.23", "0.71", ".23", ".71", "23", "71"):
            assert hidden not in text, (name, hidden)
        # the best arm is never singled out either: both option names appear the same way
        assert text.count(framing.option_name(0)) >= 1 and text.count(framing.option_name(1)) >= 1


def test_descriptions_hide_theta_and_gaussian_means():
    gaussian = make("bandit/gaussian", {"means": (1.2345, -0.6789), "horizon": 10})
    contextual = make("contextual/linear", {"horizon": 10}, 3)
    hidden = [format_number(x) for x in contextual.theta.ravel()] + ["1.2345", "0.6789"]
    for name in list_framings():
        framing = get_framing(name)
        text = framing.describe(gaussian) + framing.describe(contextual)
        assert not [h for h in hidden if h in text]
        assert not re.search(r"\d\.\d", text)  # no decimal numbers at all in a description


def test_round_text_shows_the_exact_context():
    env = make("contextual/linear", {"horizon": 5, "dim": 4}, 1)
    obs = env.reset(2)
    framing = get_framing("ad-placement")
    text = framing.round_text(obs.t, env.horizon, obs.context)
    assert text.startswith("Round 1 of 5. User features: [")
    shown = [float(x) for x in text[text.index("[") + 1:text.index("]")].split(", ")]
    assert shown == list(obs.context)  # exactly, not approximately
    assert get_framing("clinical-trial").round_text(4, 100, (0.5, -0.25)) == \
        "Round 5 of 100. Patient measurements: [0.5, -0.25]."
    assert get_framing("buttons").round_text(4, 100) == "Round 5 of 100."
    assert format_exact(0.123456789) == repr(0.123456789)  # more digits than 4: never rounded


def test_feedback_text_examples():
    buttons = get_framing("buttons")
    assert buttons.feedback_text(2, action=1, feedback={"reward": 1.0}) == \
        "Round 3: you pressed the green button and received reward 1."
    assert buttons.feedback_text(0, action=0, feedback={"reward": 0.0}) == \
        "Round 1: you pressed the blue button and received reward 0."
    assert buttons.feedback_text(0, action=2, feedback={"reward": -0.123456}) == \
        "Round 1: you pressed the red button and received reward -0.1235."
    assert buttons.feedback_text(0, feedback={"reward": 0.5}) == "Round 1: you received reward 0.5."
    slots = get_framing("slot-machines")
    assert slots.feedback_text(9, action=2, feedback={"reward": 1}) == \
        "Round 10: you played slot machine C and received payout 1."
    text = buttons.feedback_text(4, action=1, feedback={"losses": [0.25, 1.0, 0.333333]})
    assert text == ("Round 5: you chose the green button. "
                    "Cost of each button: blue: 0.25, green: 1, red: 0.3333. Your cost: 1.")
    text = buttons.feedback_text(4, policy=[0.5, 0.5, 0.0], feedback={"losses": [0.2, 0.6, 1.0]})
    assert text == ('Round 5: you chose the distribution {"blue": 0.5, "green": 0.5}. '
                    "Cost of each button: blue: 0.2, green: 0.6, red: 1. Your expected cost: 0.4.")
    with pytest.raises(ValueError, match="feedback"):
        buttons.feedback_text(0, action=0)
    with pytest.raises(ValueError, match="reward"):
        buttons.feedback_text(0, action=0, feedback={"score": 1})


def test_feedback_reports_every_loss_of_an_experts_round():
    env = make("experts/full-info", {"n_experts": 4, "horizon": 3})
    env.reset(0)
    step = env.step(2)
    framing = get_framing("restaurants")
    text = framing.feedback_text(step.t, action=2, feedback=step.feedback)
    for i, loss in enumerate(step.feedback["losses"]):
        assert f"{framing.option_name(i)}: {format_number(loss)}" in text
    assert f"Your disappointment: {format_number(step.feedback['losses'][2])}." in text


def test_format_number():
    assert [format_number(x) for x in (1.0, 0.0, -0.0, 1, 0.5, 0.12345, -0.00001, 2.00004, 1e6)] == \
        ["1", "0", "0", "1", "0.5", "0.1235", "0", "2", "1000000"]
    assert format_number(np.float64(0.25)) == "0.25"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_option_names_round_trip(name):
    framing = get_framing(name)
    names = framing.option_names(30)
    assert len(set(names)) == 30
    assert names == [framing.option_name(i) for i in range(30)]
    for i in range(30):
        option = framing.option_name(i)
        assert framing.option_index(option) == i
        assert framing.option_index(f"  {option.upper()}  ") == i
        assert framing.option_index(option.lower() + ".") == i
        assert framing.option_index(f"`{option}`") == i
        assert framing.option_index(framing.phrase(i)) == i
        assert framing.option_index(str(i + 1)) == i  # the 1-based position
        assert framing.option_index(option, n_options=i + 1) == i
        assert framing.option_index(option, n_options=i) is None
    assert framing.option_index("definitely not an option") is None
    assert framing.option_index("") is None
    assert framing.option_index("0") is None


def test_option_name_conventions():
    assert get_framing("buttons").option_names(3) == ["blue", "green", "red"]
    assert get_framing("slot-machines").option_names(3) == ["A", "B", "C"]
    assert get_framing("numeric").option_names(3) == ["1", "2", "3"]
    assert get_framing("slot-machines").option_name(26) == "option 27"
    assert get_framing("buttons").option_name(29) == "option 30"
    assert get_framing("numeric").option_name(99) == "100"
    assert get_framing("buttons").option_index("the Green Button") == 1
    assert get_framing("buttons").option_index("option 27") == 26
    assert get_framing("slot-machines").option_index("machine b") == 1
    assert get_framing("ad-placement").option_index("popup") == 5
    assert get_framing("clinical-trial").option_index("treatment brenix") == 1
    assert get_framing("numeric").option_index("arm 4") == 3
    with pytest.raises(ValueError):
        get_framing("buttons").option_name(-1)


def test_unknown_framing_suggests_the_close_name():
    with pytest.raises(UnknownNameError) as info:
        get_framing("slot-machine")
    assert "did you mean 'slot-machines'" in str(info.value)
    with pytest.raises(UnknownNameError, match="restaurants"):
        get_framing("restaurant")


def test_answer_instructions():
    framing = get_framing("buttons")
    text = framing.answer_instructions("bandit")
    assert text.splitlines()[-1] == "ANSWER: blue" and "Think" in text
    short = framing.answer_instructions("contextual", reasoning=False)
    assert "final line only" in short and "Think" not in short
    experts = framing.answer_instructions("experts", n_options=3)
    example = next(line for line in experts.splitlines() if line.startswith("ANSWER: {"))
    assert json.loads(example[len("ANSWER:"):]) == {"blue": 0.7, "green": 0.3}
    listed = next(line for line in experts.splitlines() if line.startswith("ANSWER: ["))
    assert sum(json.loads(listed[len("ANSWER:"):])) == pytest.approx(1.0)
    assert len(json.loads(listed[len("ANSWER:"):])) == 3
    with pytest.raises(ValueError, match="kind"):
        framing.answer_instructions("poker")


def test_summary_text():
    framing = get_framing("buttons")
    text = summary_text(framing, "bandit", 3, [2, 0, 1], [0.5, None, 1.0])
    assert text.splitlines() == ["Summary of the 3 rounds so far:",
                                 "- blue: chosen 2 times, average reward 0.5",
                                 "- green: chosen 0 times, not tried yet",
                                 "- red: chosen 1 time, average reward 1"]
    assert summary_text("buttons", "bandit", 3, [2, 0, 1], mean_rewards=[0.5, None, 1.0]) == text
    assert framing.summary_text("bandit", 3, [2, 0, 1], [0.5, float("nan"), 1.0]) == text
    experts = summary_text(framing, "experts", 2, [1, 3], cumulative_losses=[1.25, 2.0], rounds=4)
    assert experts.splitlines() == ["Summary of the 4 rounds so far:",
                                    "- blue: chosen 1 time, total cost 1.25",
                                    "- green: chosen 3 times, total cost 2"]
    with pytest.raises(ValueError, match="expected 3"):
        summary_text(framing, "bandit", 3, [1, 2], [0.5, 0.5])
    with pytest.raises(ValueError):
        summary_text(framing, "experts", 2, [1, 1], mean_rewards=[0.5, 0.5])


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_rendering_is_deterministic(name):
    framing = get_framing(name)
    for family, params in SPECS:
        first = render_episode(framing, family, params, instance_seed=2, seed=5)
        assert render_episode(framing, family, params, instance_seed=2, seed=5) == first
        assert render_episode(get_framing(name), family, params, instance_seed=2, seed=5) == first


def test_framings_differ_but_pose_the_same_problem():
    env = make("bandit/bernoulli", {"n_arms": 3, "horizon": 20})
    texts = {name: get_framing(name).describe(env) for name in list_framings()}
    assert len(set(texts.values())) == len(texts)
    assert all("3 " in t and "20 rounds" in t for t in texts.values())


def test_framing_is_frozen_and_validates_labels():
    framing = get_framing("buttons")
    with pytest.raises(AttributeError):
        framing.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="repeated"):
        Framing(name="bad", option_noun="x", option_plural="xs", option_labels=("a", "A"), setting=".",
                choose_verb="pick", chose_verb="picked", option_phrase="{name}")
    with pytest.raises(ValueError, match="numeric"):
        Framing(name="bad", option_noun="x", option_plural="xs", option_labels=("a", "2"), setting=".",
                choose_verb="pick", chose_verb="picked", option_phrase="{name}")
