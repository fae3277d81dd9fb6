"""Rendering chosen trajectories as chat examples.

Two sources of text:

- **LLM decisions** (rows with `messages`): the assistant turn is exactly the model's
  `raw_output`. Per decision, an example is the exact messages the model saw (final attempt)
  plus that output. Per episode, when every round's messages extend the previous round's
  messages plus the model's answer ("chat" mode), the episode is the last round's messages
  plus its answer, unchanged. Otherwise (a stateless per-round prompt) the chat is rebuilt
  from the framing ("rebuilt" mode, below) with the model's outputs as assistant turns.
- **Algorithm decisions** (no `messages`): verbalised through the episode's framing: a short
  rationale from the decision's logged `info` (for UCB, the indices) and the final answer line
  in the form LLM agents are asked for (`ANSWER: <option name>`, or a distribution for experts).

Rebuilt chats: a system turn (the framing's task description and answer instructions), then
per round a user turn (the previous round's feedback line, then the round line with any
context numbers) and an assistant turn.

RISE (multi-turn self-correction, arXiv 2407.18219): `rise_examples` takes episodes of the
shape documented on `RiseEpisode` and writes one example per attempt, the attempt as the
target (`"train": true`), earlier attempts kept as context but marked `"train": false`, and a
top-level `weight = exp(reward / tau)`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scenarios import ActionSpace, ConfigError, Registry, Simplex, UsageError
from scenarios.framing import ANSWER_PREFIX, DEFAULT_FRAMING, Framing


class DatasetFormatError(UsageError):
    """Rows that the chosen dataset format cannot hold."""

CHAT, REBUILT, VERBALISED = "chat", "rebuilt", "verbalised"


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# --- algorithm rationales --------------------------------------------------------------
def baseline_rationale(fr: Framing, row: Mapping[str, Any], explainer: str | None = None) -> str:
    """The agent's own explanation of a decision (the explainer it registered, agents.EXPLAINERS)."""
    from agents import explain

    return explain(explainer, fr, row)


_OPTIONS = Simplex(0)  # how a decision is written when no action space is given: an option or a distribution


def answer_line(fr: Framing, row: Mapping[str, Any], space: ActionSpace | None = None) -> str:
    """The final `ANSWER: ...` line, written as the episode's action space renders a decision."""
    text = (space or _OPTIONS).render(fr, row.get("action"), _loads(row.get("policy")), row.get("answer"))
    return f"{ANSWER_PREFIX} {text}"


def verbalise_decision(fr: Framing, row: Mapping[str, Any], explainer: str | None = None,
                       space: ActionSpace | None = None) -> str:
    """An algorithm's decision as an assistant turn: its own explanation, then the answer line."""
    return f"{baseline_rationale(fr, row, explainer)}\n{answer_line(fr, row, space)}"


# --- chats ------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpisodeText:
    """What the framing needs to retell an episode: the story, the scenario, its kind."""

    framing: Framing
    description: str
    kind: str
    horizon: int
    n_actions: int
    space: ActionSpace | None = None  # how decisions are asked for and written (None: options)

    def system(self) -> dict[str, str]:
        if self.space is None:
            instructions = self.framing.answer_instructions(self.kind, True, self.n_actions)
        else:
            instructions = self.space.instructions(self.framing, True)
        return {"role": "system", "content": f"{self.description}\n\n{instructions}"}

    def user(self, t: int, previous: Mapping[str, Any] | None, row: Mapping[str, Any]) -> dict[str, str]:
        parts = []
        if previous is not None:
            feedback = _loads(previous.get("feedback")) or {"reward": previous["reward"]}
            parts.append(self.framing.feedback_text(previous["t"], previous.get("action"),
                                                    _loads(previous.get("policy")), feedback, previous.get("answer")))
        parts.append(self.framing.round_text(t, self.horizon, _loads(row.get("context"))))
        return {"role": "user", "content": "\n".join(parts)}


def is_llm_episode(rows: Sequence[Mapping[str, Any]]) -> bool:
    """A language model's episode: some decision logged the messages it was sent or an output."""
    return any(r.get("messages") is not None or r.get("raw_output") for r in rows)


def _assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def _is_chat(rows: Sequence[Mapping[str, Any]]) -> bool:
    """True when each round's messages are the previous round's plus the model's answer and more."""
    previous: list | None = None
    for row in rows:
        messages = _loads(row["messages"])
        if messages is None:
            return False
        if previous is not None and messages[: len(previous)] != previous:
            return False
        previous = [*messages, _assistant(row["raw_output"])]
    return True


def _rebuilt(text: EpisodeText, rows: Sequence[Mapping[str, Any]], answers: Sequence[str]) -> list[dict]:
    messages = [text.system()]
    previous = None
    for row, answer in zip(rows, answers):
        messages.append(text.user(row["t"], previous, row))
        messages.append(_assistant(answer))
        previous = row
    return messages


def _verbalised(told: EpisodeText, rows: Sequence[Mapping[str, Any]], explainer: str | None) -> list[str]:
    return [verbalise_decision(told.framing, r, explainer, told.space) for r in rows]


def episode_chat(text: Callable[[], EpisodeText], rows: Sequence[Mapping[str, Any]],
                 explainer: str | None = None) -> tuple[list[dict], str]:
    """The whole episode as one chat, and the mode used (chat, rebuilt or verbalised).

    `text` is called only when the chat has to be told through the framing; `explainer` is
    the episode's agent's (its `explainer` column), which verbalises an algorithm's decisions.
    """
    if is_llm_episode(rows):
        if _is_chat(rows):
            return [*_loads(rows[-1]["messages"]), _assistant(rows[-1]["raw_output"])], CHAT
        return _rebuilt(text(), rows, [r["raw_output"] or "" for r in rows]), REBUILT
    told = text()
    return _rebuilt(told, rows, _verbalised(told, rows, explainer)), VERBALISED


def decision_chats(text: Callable[[], EpisodeText], rows: Sequence[Mapping[str, Any]],
                   explainer: str | None = None) -> tuple[list[list[dict]], str]:
    """One chat per decision, each with its full context and ending in that decision's answer."""
    if is_llm_episode(rows):
        if all(r.get("messages") is not None for r in rows):
            return [[*_loads(r["messages"]), _assistant(r["raw_output"])] for r in rows], CHAT
        # some decision did not log its messages: tell the context through the framing instead
        whole = _rebuilt(text(), rows, [r["raw_output"] or "" for r in rows])
        return [whole[: 3 + 2 * i] for i in range(len(rows))], REBUILT
    told = text()
    whole = _rebuilt(told, rows, _verbalised(told, rows, explainer))
    # system + (user, assistant) per round: decision t ends at index 2 + 2t
    return [whole[: 3 + 2 * i] for i in range(len(rows))], VERBALISED


def relabelled_chats(chat: list[dict], names: Sequence[str]) -> list[list[dict]]:
    """A summary-history decision's chat under each cyclic shift of its listed options (itself first).

    The prompt of a round with `history = "summary"` names options only by listed position:
    the description and the instructions list the framing's names in order, and the summary
    has one line per listed option, `- NAME: stats`. Moving the stats lines round by s (the
    option listed j-th now shows what the (j+s)-th showed) and the answer's name with them is
    exactly the prompt and answer of the same round with the options listed in another order,
    so each kept decision is also taught with its chosen option at every listed position: the
    position then carries nothing, the summary's numbers everything. A chat not of that form
    (no one summary line per name in order, or an answer naming no option once) comes back alone.
    """
    *context, user, answer = chat
    k = len(names)
    lines = user["content"].split("\n")
    at = [i for i, line in enumerate(lines) if any(line.startswith(f"- {name}: ") for name in names)]
    quoted = [f'"{name}"' for name in names]
    picked = [j for j, q in enumerate(quoted) if q in answer["content"]]
    if (answer["role"] != "assistant" or len(at) != k or len(picked) != 1
            or answer["content"].count(quoted[picked[0]]) != 1
            or any(not lines[i].startswith(f"- {name}: ") for i, name in zip(at, names))):
        return [chat]
    stats = [lines[i][len(f"- {name}: "):] for i, name in zip(at, names)]
    chats = [chat]
    for shift in range(1, k):
        moved = list(lines)
        for j, i in enumerate(at):
            moved[i] = f"- {names[j]}: {stats[(j + shift) % k]}"
        new = (picked[0] - shift) % k  # the chosen option's stats now sit at this listed position
        content = answer["content"].replace(quoted[picked[0]], quoted[new])
        chats.append([*context, {**user, "content": "\n".join(moved)}, {**answer, "content": content}])
    return chats


# --- output formats --------------------------------------------------------------------
# a format turns one rendered chat (ending in the assistant turn to learn) and its provenance
# columns into an output row; register more with `@DATASET_FORMATS.register("name")`
DATASET_FORMATS: Registry[Callable[[list[dict], Mapping[str, Any]], dict[str, Any]]] = Registry(
    "dataset format", "regret_harness.dataset_formats")
OPENAI_ROLES = frozenset({"system", "user", "assistant"})


@DATASET_FORMATS.register("messages")
def messages_format(messages: list[dict], provenance: Mapping[str, Any]) -> dict[str, Any]:
    """TRL conversational `{"messages": [...]}` plus provenance columns."""
    return {"messages": messages, **provenance}


@DATASET_FORMATS.register("openai")
def openai_format(messages: list[dict], provenance: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI fine-tuning JSONL: `{"messages": [...]}` only, roles system/user/assistant, string contents."""
    for m in messages:
        if m.get("role") not in OPENAI_ROLES or not isinstance(m.get("content"), str):
            raise DatasetFormatError(f"openai format: message with role {m.get('role')!r} and "
                                     f"{type(m.get('content')).__name__} content is not allowed")
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}


@DATASET_FORMATS.register("prompt-completion")
def prompt_completion_format(messages: list[dict], provenance: Mapping[str, Any]) -> dict[str, Any]:
    """TRL conversational prompt-completion: the final assistant turn is the completion, the rest the prompt."""
    if messages[-1]["role"] != "assistant":
        raise DatasetFormatError("prompt-completion format: the example does not end with an assistant turn")
    return {"prompt": messages[:-1], "completion": messages[-1:], **provenance}


FORMATS = tuple(DATASET_FORMATS.names())  # the built-in formats (plugins: DATASET_FORMATS.names())


def format_example(messages: list[dict], fmt: str, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """One output row in the registered format `fmt` (see DATASET_FORMATS)."""
    return DATASET_FORMATS.get(fmt)(messages, provenance)


# --- RISE -------------------------------------------------------------------------------
RETRY_PROMPT = "The answer is incorrect. Please try again."


@dataclass(frozen=True)
class RiseTurn:
    """One attempt of a self-correction episode: the model's response and its reward."""

    response: str
    reward: float
    # the user turn that follows this attempt when there is a next one (RISE's fixed retry prompt)
    feedback: str = RETRY_PROMPT


@dataclass(frozen=True)
class RiseEpisode:
    """A multi-turn self-correction episode: the prompt (system/user turns), then the attempts.

    `turns[i].response` is the (improved) response at attempt i: the model's own (self-
    distillation) or a stronger model's (distillation).
    """

    prompt: Sequence[Mapping[str, str]]
    turns: Sequence[RiseTurn]
    task_id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


RISE_FILTERS = ("all", "better", "best", "success")


def rise_kept_turns(rewards: Sequence[float], criterion: str = "all") -> list[bool]:
    """Which attempts become training targets, by the reference's criteria (cmu-mind/RISE).

    all: every attempt; better: the first attempt and every attempt whose reward rose over the
    previous one; best: the first attempt and every attempt at least as good as all earlier
    ones; success: only correct attempts (reward 1).
    """
    if criterion not in RISE_FILTERS:
        raise ValueError(f"unknown RISE filter {criterion!r} (filters: {', '.join(RISE_FILTERS)})")
    kept = []
    for i, reward in enumerate(rewards):
        if criterion == "success":
            kept.append(reward >= 1.0)
        elif i == 0 or criterion == "all":
            kept.append(True)
        elif criterion == "better":
            kept.append(reward > rewards[i - 1])
        else:
            kept.append(all(reward >= earlier for earlier in rewards[:i]))
    return kept


def rise_examples(episodes: Iterable[RiseEpisode], tau: float = 0.4, fmt: str = "messages",
                  criterion: str = "all") -> list[dict[str, Any]]:
    """Reward-weighted SFT rows: per kept attempt, the history with earlier attempts not trained on.

    `criterion` chooses the attempts that become targets (`rise_kept_turns`); the others stay
    in later rows' history. Each row: `weight` = exp(reward / tau), `reward`, `turn` (0-based), `task_id`, and

    - fmt="messages": `messages`, every message with `train`: true only on the target attempt;
    - fmt="prompt-completion": TRL conversational `prompt` (the history) and `completion` (the
      target attempt), which TRL's SFT trainer masks natively (loss on the completion only).
    """
    if not (isinstance(tau, (int, float)) and tau > 0):
        raise ConfigError(f"tau must be > 0, got {tau!r}")
    if fmt not in ("messages", "prompt-completion"):
        raise ConfigError(f"RISE format must be 'messages' or 'prompt-completion', got {fmt!r}")
    rows = []
    for episode in episodes:
        if not episode.prompt or not episode.turns:
            raise ConfigError(f"RISE episode {episode.task_id!r} needs a prompt and at least one turn")
        history = [{"role": m["role"], "content": m["content"], "train": False} for m in episode.prompt]
        kept = rise_kept_turns([t.reward for t in episode.turns], criterion)
        for i, turn in enumerate(episode.turns):
            target = {"role": "assistant", "content": turn.response, "train": True}
            if kept[i]:
                if fmt == "messages":
                    text = {"messages": [*history, target]}
                else:
                    text = {"prompt": [{"role": m["role"], "content": m["content"]} for m in history],
                            "completion": [{"role": "assistant", "content": turn.response}]}
                rows.append({**text, "weight": math.exp(turn.reward / tau), "reward": float(turn.reward),
                             "turn": i, "task_id": episode.task_id, **episode.extra})
            history = [*history, {**target, "train": False}, {"role": "user", "content": turn.feedback, "train": False}]
    return rows
