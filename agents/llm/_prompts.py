"""Prompts from a scenario's framing, built with langchain-core chat prompt templates (compiled
once per process to plain `str.format` templates, see `compile_template`).

Single-turn mode (default): every round is one self-contained request, a system message plus
one user message holding the task description, the history (full: one line per past round;
summary: per option, times chosen and mean reward, or total loss for experts) and the question
for this round with the answer instructions. Multi-turn mode: the whole episode is one chat;
each user turn reports the last round's outcome and asks the next question, each assistant
turn is the model's own earlier reply.

With `shuffle_options`, the options are relabelled by a seeded permutation (`OptionOrder`),
drawn once per episode or afresh every round (`OptionOrders`): the model sees the scenario's
option `order[j]` as the j-th listed option (the framing's j-th name), in the description, the
history and the feedback alike, so neither a name nor a position carries information about
which option is best. The history is kept in the scenario's numbering and written out with the
round's order, so with a fresh order per round the past rounds are told under the names the
model sees now. Everything the agent returns is mapped back to the scenario's numbering.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents._base import EpisodeInfo
from agents.llm._formats import AnswerSchema
from agents.llm._parse import split_reasoning
from scenarios.framing import Framing

DEFAULT_SYSTEM_PROMPT = (
    "You are a decision-making agent playing a repeated game. Use what you have observed to choose well, "
    "balancing trying options you know little about against choosing the option that looks best. "
    "Always end your reply with the final answer line in exactly the requested form."
)



@dataclass(frozen=True)
class OptionOrder:
    """The model's j-th listed option is the scenario's option `order[j]`."""

    order: tuple[int, ...]

    @classmethod
    def identity(cls, n: int) -> OptionOrder:
        return cls(tuple(range(n)))

    @classmethod
    def shuffled(cls, n: int, seed: int, t: int | None = None) -> OptionOrder:
        """The episode's permutation, or with `t` round t's own."""
        order = list(range(n))
        key = f"option-order:{seed}" if t is None else f"option-order:{seed}:{t}"
        random.Random(key).shuffle(order)  # a str seed hashes deterministically
        return cls(tuple(order))

    @property
    def is_identity(self) -> bool:
        return self.order == tuple(range(len(self.order)))

    def to_scenario(self, shown: int) -> int:
        return self.order[shown]

    def to_shown(self, action: int) -> int:
        return self.order.index(action)

    def shown_values(self, values: Sequence[Any]) -> list[Any]:
        """A per-option list in the scenario's numbering, reordered as the model sees it."""
        return [values[i] for i in self.order]

    def scenario_values(self, shown: Sequence[Any]) -> tuple[Any, ...]:
        """A per-option list as the model listed it, back in the scenario's numbering."""
        values: list[Any] = [0.0] * len(self.order)
        for j, value in enumerate(shown):
            values[self.order[j]] = value
        return tuple(values)


SHUFFLE_MODES = ("episode", "round")


@dataclass(frozen=True)
class OptionOrders:
    """Which order each round lists the options in: always the scenario's (`mode` None), one
    seeded permutation per episode, or a fresh seeded permutation every round."""

    n: int
    seed: int
    mode: str | None = None

    def at(self, t: int) -> OptionOrder:
        if self.mode is None:
            return OptionOrder.identity(self.n)
        return OptionOrder.shuffled(self.n, self.seed, t if self.mode == "round" else None)


@functools.cache
def _templates():
    """The two langchain templates, built once per process (langchain-core is imported lazily)."""
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

    single_turn = ChatPromptTemplate.from_messages([
        ("system", "{system}"),
        ("human", "{task}\n\n{history}\n\n{question}"),
    ])
    multi_turn = ChatPromptTemplate.from_messages([
        ("system", "{system}"),
        MessagesPlaceholder("conversation"),
    ])
    return single_turn, multi_turn


_ROLES = {"system": "system", "human": "user", "ai": "assistant"}

# A compiled template: per message, (role, f-string template), or (None, variable) for a
# placeholder of (langchain message type, text) pairs taken as they are.
CompiledTemplate = tuple[tuple[str | None, str], ...]


def compile_template(template) -> CompiledTemplate:
    """A langchain ChatPromptTemplate of f-string messages and message placeholders as plain
    `str.format` templates, rendered by `render` to the dicts `template.format_messages` gives
    (tests compare them). Why: rendering through langchain's objects cost about 7% of an LLM
    decision's CPU on the direct client; the templates stay langchain's, defined once."""
    from langchain_core.prompts import MessagesPlaceholder

    if template.partial_variables:
        raise ValueError(f"compile_template: partial variables are not compiled ({sorted(template.partial_variables)})")
    parts: list[tuple[str | None, str]] = []
    for message in template.messages:
        if isinstance(message, MessagesPlaceholder):
            parts.append((None, message.variable_name))
            continue
        prompt = message.prompt
        if prompt.template_format != "f-string" or prompt.partial_variables:
            raise ValueError(f"compile_template: only f-string messages without partials ({prompt.template!r})")
        role = message.format_messages(**dict.fromkeys(message.input_variables, ""))[0].type
        parts.append((_ROLES[role], prompt.template))
    return tuple(parts)


def render(template: CompiledTemplate, **values: Any) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for role, text in template:
        if role is None:
            messages += [{"role": _ROLES[kind], "content": content} for kind, content in values[text]]
        else:
            messages.append({"role": role, "content": text.format(**values)})
    return messages


@functools.cache
def _compiled() -> tuple[CompiledTemplate, CompiledTemplate]:
    """The two templates compiled, once per process."""
    single_turn, multi_turn = _templates()
    return compile_template(single_turn), compile_template(multi_turn)


class EpisodePrompts:
    """The history of one episode and the messages each round shows the model."""

    def __init__(self, episode: EpisodeInfo, framing: Framing, *, history: str = "full", reasoning: bool = True,
                 multi_turn: bool = False, system_prompt: str | None = None, answer_format: str = "text",
                 orders: OptionOrders | None = None) -> None:
        self.episode, self.framing = episode, framing
        self.history_mode, self.multi_turn = history, multi_turn
        self.system = system_prompt or DEFAULT_SYSTEM_PROMPT
        # the description names options by listed position, so a relabelling leaves it unchanged
        self.task = episode.description
        n = episode.n_actions
        self.orders = orders or OptionOrders(n, 0)
        self.answer_format = answer_format
        self.schema = AnswerSchema(tuple(framing.option_names(n)), episode.kind == "experts", reasoning)
        if answer_format == "text":
            self.instructions = framing.answer_instructions(episode.kind, reasoning=reasoning, n_options=n)
        else:
            self.instructions = self.schema.instructions(answer_format, framing)
        # past rounds in the scenario's numbering: (t, action, policy, feedback), written out per round's order
        self.rounds: list[tuple[int, int | None, tuple[float, ...] | None, dict]] = []
        self.counts = [0.0] * n
        self.values = [0.0] * n  # reward sums (bandits) or cumulative losses (experts), scenario numbering
        self.conversation: list[tuple[str, str]] = []  # multi-turn: (role, text)
        self._pending_feedback = ""
        self._lines: list[str] = []  # the past rounds' lines as `_lines_order` shows them
        self._lines_order: OptionOrder | None = None

    # --- what the model sees -----------------------------------------------------------------
    def question(self, t: int, context: Any = None) -> str:
        return f"{self.framing.round_text(t, self.episode.horizon, context)}\n{self.instructions}"

    def history_text(self, order: OptionOrder | None = None) -> str:
        """The history as the round listing options in `order` (default: round 0's) tells it."""
        if not self.rounds:
            return "No rounds have been played yet."
        order = order or self.orders.at(0)
        if self.history_mode == "summary":
            kind = self.episode.kind
            if kind == "experts":
                values = list(self.values)
            else:
                values = [s / c if c else None for s, c in zip(self.values, self.counts)]
            return self.framing.summary_text(kind, self.episode.n_actions, order.shown_values(self.counts),
                                             order.shown_values(values), rounds=len(self.rounds))
        return "History of the rounds so far:\n" + "\n".join(self._history_lines(order))

    def _history_lines(self, order: OptionOrder) -> list[str]:
        """Each past round rendered once while the order stays (re-rendering the whole history
        every round cost time quadratic in the horizon); a new order renders them all again."""
        if order != self._lines_order:
            self._lines, self._lines_order = [], order
        for past in self.rounds[len(self._lines):]:
            self._lines.append(self._line(past, order))
        return self._lines

    def _line(self, past: tuple, order: OptionOrder) -> str:
        t, action, policy, feedback = past
        if not order.is_identity:
            action = None if action is None else order.to_shown(action)
            policy = None if policy is None else tuple(order.shown_values(policy))
            if "losses" in feedback:
                feedback = {**feedback, "losses": order.shown_values(list(feedback["losses"]))}
        return self.framing.feedback_text(t, action=action, policy=policy, feedback=feedback)

    def messages(self, t: int, context: Any = None) -> list[dict[str, str]]:
        single, multi = _compiled()
        question = self.question(t, context)
        if not self.multi_turn:
            return render(single, system=self.system, task=self.task, history=self.history_text(self.orders.at(t)),
                          question=question)
        if not self.conversation:
            turn = f"{self.task}\n\n{question}"
        else:
            turn = self._pending_feedback
            if self.history_mode == "summary":
                turn += "\n\n" + self.history_text(self.orders.at(t))
            turn += "\n\n" + question
        return render(multi, system=self.system, conversation=[*self.conversation, ("human", turn)])

    def correction(self, error: str) -> str:
        return f"Your reply could not be used: {error}.\n{self.instructions}"

    def request(self) -> dict[str, Any]:
        """The structured-answer arguments of every call (none for free text)."""
        return self.schema.request(self.answer_format)

    # --- learning the outcome ----------------------------------------------------------------
    def record(self, t: int, action: int | None, policy: tuple[float, ...] | None, feedback: dict,
               sent: list[dict[str, str]] | None, reply: str) -> None:
        """Add round t's outcome (scenario numbering); `sent`/`reply` are the round's question and the
        model's reply (multi-turn)."""
        self.rounds.append((t, action, policy, dict(feedback)))
        if "losses" in feedback:
            for i, loss in enumerate(feedback["losses"]):
                self.values[i] += float(loss)
            if policy is not None:
                for i, p in enumerate(policy):
                    self.counts[i] += p
            elif action is not None:
                self.counts[action] += 1
        elif action is not None:
            self.counts[action] += 1
            self.values[action] += float(feedback["reward"])
        if self.multi_turn and sent:
            self.conversation.append(("human", sent[-1]["content"]))
            self.conversation.append(("ai", split_reasoning(reply)[1]))  # think blocks are not replayed
            self._pending_feedback = self._line(self.rounds[-1], self.orders.at(t))
