"""Natural-language framings: one numeric scenario posed to an LLM as many different stories.

A `Framing` renders any scenario instance as text: the task description shown once
(`describe`), a line opening each round (`round_text`, with the exact context numbers of a
contextual scenario), a line reporting what happened (`feedback_text`), how the model must
answer (`answer_instructions`) and the "summary" history mode (`summary_text`). Every method
is a pure function of its inputs: no randomness, no hidden facts (arm means, theta, the best
arm, regret) ever appear in the text.

Round numbers: every method takes the scenario's 0-based round index `t` and shows it 1-based
("Round 1 of 100." for t = 0).

Option names: `option_name(i)` is the framing's i-th label ("blue", "A", "Golden Dragon", ...);
past the built-in labels (26 for every story framing) it falls back to "option 27",
"option 28", ... The `numeric` framing names its arms "1", "2", ... without limit.
`option_index(text)` inverts it and tolerates, case-insensitively and with any whitespace,
hyphen/underscore or surrounding quote/backtick/asterisk/trailing punctuation:

- the name itself: "green", " GREEN ", "`green`", "green.", "popup" for "pop-up";
- the name with the article and/or option noun: "the green button", "slot machine B",
  "treatment Alvera", "the top banner slot";
- the 1-based position of the option as shown in the description: "2", "#2", "option 2",
  "button 2" (so "option 27" also round-trips).

Framings are registered in `FRAMINGS` (entry-point group "regret_harness.framings"); third
parties call `register_framing(Framing(...))`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scenarios._registry import Registry

ANSWER_PREFIX = "ANSWER:"
DEFAULT_FRAMING = "buttons"  # the story an episode is told in when neither the plan nor the agent names one
KINDS = ("bandit", "contextual", "experts")


# --- number formatting ------------------------------------------------------------------
def format_number(value: float, digits: int = 4) -> str:
    """Compact, deterministic: integers without a decimal point, others with up to `digits` decimals."""
    x = float(value)
    if not math.isfinite(x):
        return str(x)
    if x.is_integer():
        text = str(int(x))
    else:
        text = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_exact(value: float) -> str:
    """Like `format_number`, but never loses information (falls back to the float's repr)."""
    x = float(value)
    text = format_number(x)
    return text if math.isfinite(x) and float(text) == x else repr(x)


def _normalise(text: str) -> str:
    text = str(text).replace("\u2019", "'").replace("\u2018", "'").replace("_", " ").replace("-", " ")
    text = text.strip().strip("\"'`*").strip()
    text = text.rstrip(".,;:!?").strip().strip("\"'`*").strip()
    return " ".join(text.casefold().split())


_NUMBER = re.compile(r"^(?:(?:option|number|no\.?|#)\s*)?#?\s*(\d+)$")


@dataclass(frozen=True)
class Framing:
    """A story in which any scenario can be told. See the module docstring for the conventions."""

    name: str
    option_noun: str  # "button"
    option_plural: str  # "buttons"
    option_labels: tuple[str, ...]  # "blue", "green", ...
    setting: str  # the story's opening sentence
    choose_verb: str  # "press": "In each round you press one button"
    chose_verb: str  # "pressed": "you pressed the green button"
    option_phrase: str  # "the {name} button": how an option is referred to in a sentence
    reward_noun: str = "reward"
    loss_noun: str = "loss"
    context_noun: str = "context"  # "user features", "patient measurements"
    fallback_label: str = "option {n}"  # names past the labels; {n} is the 1-based position
    noun_aliases: tuple[str, ...] = ()  # extra words option_index strips ("machine", "slot")
    _lookup: dict[str, int] = field(init=False, repr=False, compare=False, default_factory=dict)
    _compact: dict[str, int] = field(init=False, repr=False, compare=False, default_factory=dict)
    _aliases: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        lookup: dict[str, int] = {}
        for index, label in enumerate(self.option_labels):
            key = _normalise(label)
            if not key or key in lookup or _NUMBER.match(key):
                raise ValueError(f"framing {self.name!r}: option label {label!r} is empty, repeated or numeric")
            lookup[key] = index
        if "{n}" not in self.fallback_label:
            raise ValueError(f"framing {self.name!r}: fallback_label must contain '{{n}}'")
        aliases = {_normalise(a) for a in (self.option_noun, *self.noun_aliases) if _normalise(a)}
        compact: dict[str, int] = {}
        for key, index in lookup.items():  # "popup" for "pop-up": only where unambiguous
            compact[key.replace(" ", "")] = -1 if key.replace(" ", "") in compact else index
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_compact", {k: v for k, v in compact.items() if v >= 0})
        object.__setattr__(self, "_aliases", tuple(sorted(aliases, key=lambda a: (-len(a), a))))

    # --- option names -------------------------------------------------------------------
    def option_name(self, i: int) -> str:
        if i < 0:
            raise ValueError(f"option index must be >= 0, got {i}")
        if i < len(self.option_labels):
            return self.option_labels[i]
        return self.fallback_label.format(n=i + 1)

    def option_names(self, n: int) -> list[str]:
        return [self.option_name(i) for i in range(n)]

    def option_index(self, name: str, n_options: int | None = None) -> int | None:
        """The 0-based index `name` refers to, or None (also None when >= n_options, if given)."""
        index = self._match(name)
        if index is None or (n_options is not None and index >= n_options):
            return None
        return index

    def _match(self, name: str) -> int | None:
        key = _normalise(name)
        if not key:
            return None
        candidates = [key]
        if key.startswith("the "):
            candidates.append(key[4:])
        for cand in list(candidates):
            for alias in self._aliases:
                if cand.startswith(alias + " "):
                    candidates.append(cand[len(alias) + 1:].strip())
                if cand.endswith(" " + alias):
                    candidates.append(cand[: -len(alias) - 1].strip())
        for cand in candidates:
            if cand.startswith("the "):
                candidates.append(cand[4:])
            if cand in self._lookup:
                return self._lookup[cand]
        for cand in candidates:
            if cand.replace(" ", "") in self._compact:
                return self._compact[cand.replace(" ", "")]
        fallback_prefix = _normalise(self.fallback_label.split("{n}")[0])
        for cand in candidates:
            if fallback_prefix and cand.startswith(fallback_prefix + " "):
                cand = cand[len(fallback_prefix) + 1:].strip()
            match = _NUMBER.match(cand)
            if match and int(match.group(1)) >= 1:
                return int(match.group(1)) - 1
        return None

    def phrase(self, i: int) -> str:
        """How option i is referred to in a sentence: "the blue button", "slot machine A"."""
        return self.option_phrase.format(name=self.option_name(i))

    # --- rendering ----------------------------------------------------------------------
    def describe(self, scenario: Any) -> str:
        """The task description shown once. Reveals only public facts: story, options, horizon, feedback.

        A scenario that is not `framed` (an answer task with its own question) tells itself: its
        `describe()` is the description, whatever the framing."""
        if not getattr(scenario, "framed", True):
            return scenario.describe()
        kind = _kind_of(scenario)
        n, horizon = int(scenario.n_actions), int(scenario.horizon)
        names = ", ".join(self.option_names(n))
        parts = [self.setting, f"There are {n} {self.option_plural}: {names}.",
                 f"The game lasts {horizon} rounds."]
        if kind == "experts":
            parts.append(
                f"In each round you choose one {self.option_noun}, or a probability distribution over the "
                f"{self.option_plural}; then the {self.loss_noun} of every {self.option_noun} in that round is "
                f"revealed, a number between 0 and 1. Your {self.loss_noun} in a round is the {self.loss_noun} "
                f"of the {self.option_noun} you chose (for a distribution, the expected {self.loss_noun} under it)."
            )
            parts.append(f"Your goal is to minimise your total {self.loss_noun} over all {horizon} rounds.")
            return " ".join(parts)
        if kind == "contextual":
            dim = _context_dim(scenario)
            numbers = f"a list of {dim} numbers" if dim else "a list of numbers"
            parts.append(
                f"At the start of each round you are shown the {self.context_noun}: {numbers}. "
                f"The expected {self.reward_noun} of each {self.option_noun} depends on these numbers, "
                f"so the best {self.option_noun} can differ from round to round."
            )
        parts.append(
            f"In each round you {self.choose_verb} one {self.option_noun} and then see only the "
            f"{self.reward_noun} of that {self.option_noun}; the {self.reward_noun} of the other "
            f"{self.option_plural} stays hidden."
        )
        # the scenario's declared capabilities (public facts of its family), never its name
        rewards = getattr(scenario, "reward_values", None)
        if rewards == "binary":
            parts.append(f"The {self.reward_noun} in a round is either 0 or 1.")
        elif rewards == "real":
            parts.append(f"The {self.reward_noun} in a round is a noisy real number and may be negative.")
        if getattr(scenario, "stationary", True) is False:
            parts.append(f"The average {self.reward_noun} of each {self.option_noun} may change during the game.")
        parts.append(f"Your goal is to maximise your total {self.reward_noun} over all {horizon} rounds.")
        return " ".join(parts)

    def round_text(self, t: int, horizon: int, context: Sequence[float] | None = None) -> str:
        """"Round 5 of 100." (t is 0-based), plus the exact context numbers when there are any."""
        text = f"Round {int(t) + 1} of {int(horizon)}."
        if context is not None:
            numbers = ", ".join(format_exact(x) for x in context)
            text += f" {_capitalise(self.context_noun)}: [{numbers}]."
        return text

    def feedback_text(self, t: int, action: int | None = None, policy: Sequence[float] | None = None,
                      feedback: Mapping[str, Any] | None = None, answer: str | None = None) -> str:
        """One line on what happened in round t, from a step's feedback dict.

        A scenario that checks answers says what it wants told in `feedback["message"]`."""
        if feedback is None:
            raise ValueError("feedback_text needs the step's feedback dict ({'reward': r} or {'losses': [...]})")
        head = f"Round {int(t) + 1}:"
        if "message" in feedback:
            said = f" you answered {answer}." if answer is not None else ""
            return f"{head}{said} {feedback['message']}"
        if "losses" in feedback:
            losses = [float(x) for x in feedback["losses"]]
            listed = ", ".join(f"{self.option_name(i)}: {format_number(x)}" for i, x in enumerate(losses))
            sentences = []
            if policy is not None:
                probs = [float(p) for p in policy]
                sentences.append(f"{head} you chose the distribution {self.policy_text(probs)}.")
            elif action is not None:
                sentences.append(f"{head} you chose {self.phrase(int(action))}.")
            else:
                sentences.append(head)
            sentences.append(f"{_capitalise(self.loss_noun)} of each {self.option_noun}: {listed}.")
            if policy is not None:
                expected = sum(p * x for p, x in zip(probs, losses))
                sentences.append(f"Your expected {self.loss_noun}: {format_number(expected)}.")
            elif action is not None:
                sentences.append(f"Your {self.loss_noun}: {format_number(losses[int(action)])}.")
            return " ".join(sentences)
        if "reward" in feedback:
            reward = format_number(feedback["reward"])
            if action is None:
                return f"{head} you received {self.reward_noun} {reward}."
            return f"{head} you {self.chose_verb} {self.phrase(int(action))} and received {self.reward_noun} {reward}."
        raise ValueError(f"feedback must contain 'reward' or 'losses', got keys {sorted(feedback)}")

    def policy_text(self, policy: Sequence[float]) -> str:
        """A distribution as the JSON object the model may answer with (zero entries left out)."""
        entries = {self.option_name(i): float(p) for i, p in enumerate(policy) if float(p) != 0.0}
        inner = ", ".join(f"{json.dumps(k)}: {format_number(v)}" for k, v in entries.items())
        return "{" + inner + "}"

    def answer_instructions(self, kind: str, reasoning: bool = True, n_options: int | None = None) -> str:
        """How the model must answer: brief reasoning (optional), then a final `ANSWER: ...` line."""
        if kind not in KINDS:
            raise ValueError(f"unknown scenario kind {kind!r} (kinds: {', '.join(KINDS)})")
        first, second = self.option_name(0), self.option_name(1)
        noun = self.option_noun
        if reasoning:
            lead = f"Think briefly about which {noun} to choose, then end your reply with a final line"
        else:
            lead = "Do not explain your choice: answer with the final line only, with no other text,"
        if kind != "experts":
            return (f"{lead} of exactly this form:\n{ANSWER_PREFIX} <{noun} name>\n"
                    f"using one of the {noun} names listed above, for example:\n{ANSWER_PREFIX} {first}")
        count = f"{n_options} " if n_options else ""
        example = "{" + f"{json.dumps(first)}: 0.7, {json.dumps(second)}: 0.3" + "}"
        if n_options and n_options >= 2:
            listed = ", ".join(["0.7", "0.3"] + ["0"] * (n_options - 2))
            list_example = f", for example:\n{ANSWER_PREFIX} [{listed}]"
        else:
            list_example = f":\n{ANSWER_PREFIX} [p1, p2, ...]"
        return (f"{lead} in one of these forms:\n"
                f"{ANSWER_PREFIX} <{noun} name>\n"
                f"to choose one {noun}, for example:\n{ANSWER_PREFIX} {first}\n"
                f"or a probability distribution over the {self.option_plural} as a JSON object "
                f"({self.option_plural} left out get probability 0; the probabilities must sum to 1), for example:\n"
                f"{ANSWER_PREFIX} {example}\n"
                f"or a JSON list of {count}probabilities, one per {noun} in the order listed above, summing to 1"
                f"{list_example}")

    def summary_text(self, kind: str, n_options: int, counts: Sequence[float],
                     values: Sequence[float | None] | None = None, **kwargs: Any) -> str:
        return summary_text(self, kind, n_options, counts, values, **kwargs)


def summary_text(framing: Framing | str, kind: str, n_options: int, counts: Sequence[float],
                 values: Sequence[float | None] | None = None, *,
                 mean_rewards: Sequence[float | None] | None = None,
                 cumulative_losses: Sequence[float] | None = None, rounds: int | None = None) -> str:
    """The summary history mode: per option, times chosen and mean reward (experts: cumulative loss).

    `values` is the mean rewards for "bandit"/"contextual" and the cumulative losses for
    "experts"; the keyword forms say which explicitly. A mean of None or NaN (an option never
    chosen) reads "not tried yet". `rounds` defaults to the sum of `counts`.
    """
    fr = get_framing(framing) if isinstance(framing, str) else framing
    if kind not in KINDS:
        raise ValueError(f"unknown scenario kind {kind!r} (kinds: {', '.join(KINDS)})")
    given = [v for v in (values, mean_rewards, cumulative_losses) if v is not None]
    if len(given) != 1:
        raise ValueError("summary_text needs exactly one of values, mean_rewards, cumulative_losses")
    if kind == "experts" and mean_rewards is not None or kind != "experts" and cumulative_losses is not None:
        raise ValueError(f"{kind} summaries show {'cumulative losses' if kind == 'experts' else 'mean rewards'}")
    numbers = list(given[0])
    counts = list(counts)
    if len(counts) != n_options or len(numbers) != n_options:
        raise ValueError(f"summary_text: expected {n_options} counts and values, got {len(counts)} and {len(numbers)}")
    if rounds is None:
        rounds = sum(counts)
    header = f"Summary of the {format_number(rounds)} rounds so far:"
    lines = [header]
    for i in range(n_options):
        times = format_number(counts[i])
        chosen = f"chosen {times} time{'' if times == '1' else 's'}"
        value = numbers[i]
        if kind == "experts":
            lines.append(f"- {fr.option_name(i)}: {chosen}, total {fr.loss_noun} {format_number(value)}")
        elif value is None or float(counts[i]) == 0 or (isinstance(value, float) and math.isnan(value)):
            lines.append(f"- {fr.option_name(i)}: {chosen}, not tried yet")
        else:
            lines.append(f"- {fr.option_name(i)}: {chosen}, average {fr.reward_noun} {format_number(value)}")
    return "\n".join(lines)


def _kind_of(scenario: Any) -> str:
    kind = getattr(scenario, "kind", None)
    if kind not in KINDS:
        raise ValueError(f"cannot describe a scenario of kind {kind!r} (kinds: {', '.join(KINDS)})")
    return kind


def _context_dim(scenario: Any) -> int | None:
    dim = getattr(scenario, "context_dim", None)
    return int(dim) if dim else None


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- the registry -----------------------------------------------------------------------
FRAMINGS: Registry[Framing] = Registry("framing", "regret_harness.framings")


def register_framing(framing: Framing) -> Framing:
    """Register a framing under its name (third parties: from an entry-point module)."""
    return FRAMINGS.add(framing.name, framing, help=framing.setting)


def get_framing(name: str | Framing) -> Framing:
    """The framing called `name`; an unknown name raises UnknownNameError with suggestions."""
    if isinstance(name, Framing):
        return name
    return FRAMINGS.get(name)


def list_framings() -> list[str]:
    return FRAMINGS.names()


_COLOURS = ("blue", "green", "red", "yellow", "purple", "orange", "pink", "brown", "black", "white", "grey",
            "cyan", "magenta", "teal", "navy", "maroon", "olive", "lime", "gold", "silver", "indigo", "violet",
            "beige", "coral", "turquoise", "lavender")
_LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_AD_SLOTS = ("top banner", "left sidebar", "right sidebar", "footer", "in-feed", "pop-up", "interstitial",
             "search results", "video pre-roll", "newsletter", "sticky header", "mid-article", "comments section",
             "homepage hero", "checkout page", "product page", "login page", "mobile banner", "notification bar",
             "exit overlay", "related links", "sponsored tile", "podcast mention", "email footer", "app splash",
             "carousel")
_TREATMENTS = ("Alvera", "Brenix", "Corvane", "Dextral", "Elomir", "Fenova", "Glytex", "Halcor", "Ivarin",
               "Jorvex", "Kelpra", "Lumidex", "Mavrin", "Nexolin", "Orvane", "Pexil", "Quorin", "Rivaxa",
               "Sorvil", "Tavrex", "Ulvane", "Voxira", "Wexolin", "Xandor", "Yelvix", "Zorval")
_RESTAURANTS = ("Golden Dragon", "Bella Napoli", "Le Petit Bistro", "Taco Loco", "Sakura Sushi", "Green Bowl",
                "Spice Route", "Blue Anchor", "Olive Grove", "Seoul Kitchen", "Casa Lima", "Brick Oven",
                "Curry House", "Nordic Table", "Pho Saigon", "Smoke Pit", "Falafel King", "Crepe Corner",
                "Noodle Bar", "Harbor Grill", "Mezze Garden", "Burger Barn", "Dumpling Den", "Alpine Fondue",
                "Island Poke", "Tapas Tavern")

for _framing in (
    Framing(
        name="numeric", option_noun="arm", option_plural="arms", option_labels=(),
        setting="You face a sequential decision problem.",
        choose_verb="pull", chose_verb="pulled", option_phrase="arm {name}",
        reward_noun="reward", loss_noun="loss", context_noun="context vector",
        fallback_label="{n}", noun_aliases=("option", "action", "expert"),
    ),
    Framing(
        name="buttons", option_noun="button", option_plural="buttons", option_labels=_COLOURS,
        setting="You are playing a game with a panel of coloured buttons.",
        choose_verb="press", chose_verb="pressed", option_phrase="the {name} button",
        reward_noun="reward", loss_noun="cost", context_noun="signal readings",
    ),
    Framing(
        name="slot-machines", option_noun="slot machine", option_plural="slot machines", option_labels=_LETTERS,
        setting="You are in a casino, in front of a row of slot machines.",
        choose_verb="play", chose_verb="played", option_phrase="slot machine {name}",
        reward_noun="payout", loss_noun="loss", context_noun="machine display readings",
        noun_aliases=("machine",),
    ),
    Framing(
        name="ad-placement", option_noun="ad slot", option_plural="ad slots", option_labels=_AD_SLOTS,
        setting="You run the advertising of a website: for each visitor you decide where on the site to show an ad.",
        choose_verb="place the ad in", chose_verb="placed the ad in", option_phrase="the {name} slot",
        reward_noun="revenue", loss_noun="cost", context_noun="user features",
        noun_aliases=("slot", "placement", "ad"),
    ),
    Framing(
        name="clinical-trial", option_noun="treatment", option_plural="treatments", option_labels=_TREATMENTS,
        setting="You are running an adaptive clinical trial: in each round a new patient arrives and you assign "
                "them a treatment.",
        choose_verb="assign", chose_verb="assigned", option_phrase="treatment {name}",
        reward_noun="outcome score", loss_noun="adverse-effect score", context_noun="patient measurements",
        noun_aliases=("drug",),
    ),
    Framing(
        name="restaurants", option_noun="restaurant", option_plural="restaurants", option_labels=_RESTAURANTS,
        setting="You have just moved to a new town and eat out once a day, each time choosing a restaurant.",
        choose_verb="eat at", chose_verb="ate at", option_phrase="{name}",
        reward_noun="satisfaction", loss_noun="disappointment", context_noun="diner features",
    ),
):
    register_framing(_framing)
del _framing
