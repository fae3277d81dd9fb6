"""Worked examples of docs/extending.md, one per extension point (each is what a contributor writes).

They are registered by the tests in test_extending.py, which remove them again afterwards, so
the rest of the suite sees only the built-ins. The scenario family and the executor examples
live in their own files (tests/toy_answer.py, tests/process_executor.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from finetune.backends import BackendConfig, BaseBackend, Checkpoint


# --- a metric: mean total reward per (agent, scenario) ---------------------------------
def mean_reward(inputs):
    """Mean total reward over finished episodes."""
    return inputs.episodes.filter(pl.col("status") == "finished").group_by("agent", "scenario_id").agg(
        mean_reward=pl.col("total_reward").mean())


# --- a dataset format: Alpaca-style instruction/output rows -----------------------------
def alpaca(messages, provenance):
    """{"instruction": every turn before the last as text, "output": the last assistant turn}."""
    context = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages[:-1])
    return {"instruction": context, "output": messages[-1]["content"], "task_id": provenance.get("task_id")}


# --- a provider quirk: a model family that takes no temperature -------------------------
def no_temperature(request, settings):
    """Drop `temperature`, which some reasoning models reject."""
    request.pop("temperature", None)
    return request


# --- a fine-tuning backend: epsilon-greedy whose epsilon is fitted to the kept trajectories --
@dataclass
class EpsilonConfig(BackendConfig):
    floor: float = field(default=0.01, metadata={"help": "smallest epsilon the fit may return"})


class EpsilonBackend(BaseBackend):
    """Fits epsilon-greedy's exploration rate: the share of kept decisions that were not the round's best arm."""

    name = "epsilon"
    Config = EpsilonConfig

    def fit(self, base, dataset, config):
        decisions = dataset.decisions
        off_best = (decisions["action"] != decisions["optimal_action"]).mean()
        epsilon = max(config.floor, float(off_best))
        return Checkpoint(config.output_dir, "epsilon-greedy", self.name, {"epsilon": epsilon},
                          {"train_loss": float("nan"), "examples": float(decisions.height)})
