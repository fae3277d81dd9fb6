"""How agents explain their own decisions in datasets: each agent registers an explainer.

An explainer turns one stored decision row (its `action`, `policy`, `context` and the agent's
own `info`) into one or two sentences in the episode's framing. The dataset renderer looks it
up by the episode's `explainer` column (what the agent declared when it played) and so never
needs to know which algorithm made a decision. Baselines register theirs with `@baseline`
(the class's `explain`); other agents with `@EXPLAINERS.register(name)` and by setting
`explainer = name` on the agent class.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from scenarios import Registry

if TYPE_CHECKING:
    from scenarios.framing import Framing

Explainer = Callable[["Framing", Mapping[str, Any]], str]

EXPLAINERS: Registry[Explainer] = Registry("explainer", "regret_harness.explainers",
                                           builtin_modules=("agents.baselines",))
EXPLAINERS.lazy("torch-policy", "agents.torch_policy:explain_policy", help="a numeric policy's probabilities")


class View:
    """A decision row seen through a framing: what was played, the agent's info, and wording helpers."""

    def __init__(self, framing: Framing, row: Mapping[str, Any]) -> None:
        self.fr, self.row = framing, row
        self.info = _loads(row.get("info")) or {}
        self.action = row.get("action")
        self.policy = _loads(row.get("policy"))
        self.contextual = row.get("context") is not None
        self.chosen = framing.phrase(self.action) if self.action is not None else ""
        self.cap = self.chosen[:1].upper() + self.chosen[1:]

    def listing(self, values: Sequence[float]) -> str:
        from scenarios.framing import format_number

        return ", ".join(f"{self.fr.option_name(i)} {format_number(v)}" for i, v in enumerate(values))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def explain(name: str | None, framing: Framing, row: Mapping[str, Any]) -> str:
    """The registered explainer `name`'s sentences for `row`; a plain statement when none is registered."""
    if name and name in EXPLAINERS:
        return EXPLAINERS.get(name)(framing, row)
    return plain(framing, row)


def plain(framing: Framing, row: Mapping[str, Any]) -> str:
    v = View(framing, row)
    if v.policy is not None:
        return f"I choose a distribution over the {framing.option_plural}."
    if v.action is None:
        return "I give my answer."
    return f"I choose {v.chosen}."


def untried_first(then: Explainer) -> Explainer:
    """Algorithms that try every option once before their rule applies (info["initial"])."""

    def explainer(framing: Framing, row: Mapping[str, Any]) -> str:
        v = View(framing, row)
        if v.info.get("initial"):
            counts = v.info.get("counts")
            tried = f" (times chosen so far: {v.listing(counts)})" if counts else ""
            return f"Not every {framing.option_noun} has been tried yet{tried}, so I try {v.chosen}."
        return then(framing, row)

    return explainer
