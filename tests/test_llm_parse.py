"""The LLM answer parser over a corpus of awkward real-world-style outputs (tolerant form, strict meaning)."""

import pytest

from agents.llm import parse_answer, split_reasoning
from scenarios.framing import get_framing

BUTTONS = get_framing("buttons")  # blue, green, red, yellow, purple
SLOTS = get_framing("slot-machines")  # A, B, C, ...
ADS = get_framing("ad-placement")
NUMERIC = get_framing("numeric")

# (framing, output, expected action): valid single-option answers, one per awkward form
VALID_ACTIONS = [
    (BUTTONS, "ANSWER: blue", 0),
    (BUTTONS, "answer: GREEN", 1),
    (BUTTONS, "  ANSWER:   red   ", 2),
    (BUTTONS, "Green has the best mean so far.\nANSWER: green", 1),
    (BUTTONS, "**ANSWER:** yellow", 3),
    (BUTTONS, "**ANSWER**: purple", 4),
    (BUTTONS, "## Final Answer: blue", 0),
    (BUTTONS, "Final answer = red", 2),
    (BUTTONS, "ANSWER: `green`", 1),
    (BUTTONS, "ANSWER: \"blue\"", 0),
    (BUTTONS, "ANSWER: the red button", 2),
    (BUTTONS, "ANSWER: Blue.", 0),
    (BUTTONS, "ANSWER: green - it has the highest average reward", 1),
    (BUTTONS, "ANSWER: red (exploring, it was tried only once)", 2),
    (BUTTONS, "ANSWER: blue, since it paid off twice", 0),
    (BUTTONS, "ANSWER: 2", 1),
    (BUTTONS, "ANSWER: button 3", 2),
    (BUTTONS, "ANSWER:\n\nyellow", 3),
    (BUTTONS, "```\nANSWER: purple\n```", 4),
    (BUTTONS, "<think>Blue looked good, but red is unexplored.</think>\nANSWER: red", 2),
    (BUTTONS, "<think>\nlong thought about green\n</think>\n\nANSWER: GREEN", 1),
    (BUTTONS, "the model thought here without an opening tag</think>ANSWER: blue", 0),
    (BUTTONS, "I first considered red.\nANSWER: green\nANSWER: green", 1),
    (BUTTONS, '{"reasoning": "green is best", "answer": "green"}', 1),
    (BUTTONS, '```json\n{"action": "red"}\n```', 2),
    (BUTTONS, '{"choice": 1}', 0),
    (BUTTONS, "blue", 0),
    (BUTTONS, "Red.", 2),
    (BUTTONS, "To find the answer: compare the means.\nFinal answer: yellow", 3),
    (BUTTONS, "ANSWER: <button name>\nANSWER: green", 1),
    (BUTTONS, "> ANSWER: blue", 0),
    (BUTTONS, "ANSWER: I choose red", 2),
    (SLOTS, "ANSWER: slot machine B", 1),
    (SLOTS, "ANSWER: machine c", 2),
    (SLOTS, "ANSWER: A", 0),
    (ADS, "ANSWER: pop-up", 5),
    (ADS, "ANSWER: the popup slot", 5),
    (ADS, "ANSWER: Top Banner", 0),
    (NUMERIC, "ANSWER: 3", 2),
    (NUMERIC, "ANSWER: arm 1", 0),
]

# (framing, output, accepts_policy, expected policy)
VALID_POLICIES = [
    (BUTTONS, "ANSWER: [0.5, 0.3, 0.2]", (0.5, 0.3, 0.2)),
    (BUTTONS, 'ANSWER: {"blue": 0.7, "green": 0.3}', (0.7, 0.3, 0.0)),
    (BUTTONS, "Hedging.\nANSWER: {'red': 1.0}", (0.0, 0.0, 1.0)),
    (BUTTONS, '{"probabilities": {"blue": 0.25, "green": 0.25, "red": 0.5}}', (0.25, 0.25, 0.5)),
    (BUTTONS, '{"policy": [0.2, 0.2, 0.6]}', (0.2, 0.2, 0.6)),
    (BUTTONS, "ANSWER: [0.3333, 0.3333, 0.3333]", (1 / 3, 1 / 3, 1 / 3)),  # within tolerance, renormalised
    (BUTTONS, "ANSWER: [0.5, 0.5, 0,]", (0.5, 0.5, 0.0)),  # trailing comma
]

# (framing, output, accepts_policy, words the error must contain)
INVALID = [
    (BUTTONS, "", False, "empty"),
    (BUTTONS, "   \n  ", False, "empty"),
    (BUTTONS, "<think>still thinking about whether blue", False, "no answer"),
    (BUTTONS, "I am not sure which one is best, they all look the same to me right now.\nMaybe later.", False, "ANSWER"),
    (BUTTONS, "ANSWER: orange", False, "not one of"),  # a colour of the framing, but not among the 3 shown
    (BUTTONS, "ANSWER: chartreuse", False, "not one of"),
    (BUTTONS, "ANSWER: 7", False, "out of range"),
    (BUTTONS, "ANSWER: 0", False, "out of range"),
    (BUTTONS, "ANSWER: blue or green", False, "several"),
    (BUTTONS, "ANSWER: blue\nANSWER: red", False, "several"),
    (BUTTONS, "ANSWER: [0.5, 0.5, 0]", False, "not allowed"),
    (BUTTONS, "ANSWER: [0.5, 0.6, 0.1]", True, "sum"),
    (BUTTONS, "ANSWER: [1.2, -0.2, 0]", True, "negative"),
    (BUTTONS, "ANSWER: [0.5, 0.5]", True, "entries"),
    (BUTTONS, 'ANSWER: {"blue": 0.5, "mauve": 0.5}', True, "not one of"),
    (BUTTONS, "ANSWER: [0.5, NaN, 0.5]", True, "finite"),
    (BUTTONS, 'ANSWER: {"blue": 0.5', True, "JSON"),
    (BUTTONS, '{"thoughts": "hmm"}', False, "no 'answer'"),
    (BUTTONS, "ANSWER: <button name>", False, "template"),
]


@pytest.mark.parametrize("framing,text,expected", VALID_ACTIONS)
def test_valid_actions(framing, text, expected):
    n = 8 if framing is ADS else 5
    parsed = parse_answer(text, framing, n_options=n, accepts_policy=False)
    assert parsed.error is None, parsed.error
    assert parsed.action == expected and parsed.policy is None


@pytest.mark.parametrize("framing,text,expected", VALID_POLICIES)
def test_valid_policies(framing, text, expected):
    parsed = parse_answer(text, framing, n_options=3, accepts_policy=True)
    assert parsed.error is None, parsed.error
    assert parsed.action is None
    assert parsed.policy == pytest.approx(expected, abs=1e-12)
    assert sum(parsed.policy) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("framing,text,accepts_policy,words", INVALID)
def test_invalid_answers_are_rejected_with_a_reason(framing, text, accepts_policy, words):
    parsed = parse_answer(text, framing, n_options=3, accepts_policy=accepts_policy)
    assert not parsed.ok and parsed.action is None and parsed.policy is None
    assert words.lower() in parsed.error.lower(), parsed.error


def test_corpus_size():
    assert len(VALID_ACTIONS) + len(VALID_POLICIES) + len(INVALID) >= 40


def test_single_actions_are_accepted_where_policies_are():
    parsed = parse_answer("ANSWER: green", BUTTONS, 3, accepts_policy=True)
    assert parsed.action == 1 and parsed.policy is None


def test_reasoning_is_kept_from_every_source():
    parsed = parse_answer("<think>inner thoughts</think>Visible reasoning.\nANSWER: red", BUTTONS, 3,
                          provider_reasoning="provider field")
    assert parsed.action == 2
    assert parsed.reasoning == "provider field\n\ninner thoughts\n\nVisible reasoning."
    reasoning, visible = split_reasoning("<thinking>a</thinking> ANSWER: blue")
    assert reasoning == "a" and visible == "ANSWER: blue"


def test_reasoning_of_an_invalid_answer_is_kept_for_the_record():
    parsed = parse_answer("I like chartreuse.\nANSWER: chartreuse", BUTTONS, 3)
    assert not parsed.ok and "I like chartreuse" in parsed.reasoning


def test_litellm_mock_response_round_trip():
    """The parser on a litellm response object (mock_response: no network)."""
    import litellm

    response = litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                  mock_response="Blue was best.\n**ANSWER:** blue")
    parsed = parse_answer(response.choices[0].message.content, BUTTONS, 3)
    assert parsed.action == 0 and parsed.reasoning == "Blue was best."
