"""The `torch` backend: maximum-likelihood fine-tuning of the numeric Transformer policy on CPU.

`fit` maximises the (episode-weighted) log-likelihood of what the kept trajectories did, given
their histories: the played action (cross-entropy), or the played probability vector where an
episode answered with policies (soft cross-entropy). Action labels are randomly permuted per
sequence each epoch (`permute_actions`): the scenario families are symmetric in their
actions, so this multiplies the data without changing what is learnt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agents.torch_policy import PolicyConfig, build_module, checkpoint_path, history_features, load_module, save_policy
from finetune._backend import BackendConfig, BackendError, BaseBackend, Checkpoint, TrainingSet
from finetune.backends._train import maximise_likelihood

EPISODE_KEYS = ["agent", "task_id", "rollout"]
NEW = "torch:new"  # the agent string of a fresh, untrained policy


@dataclass
class TorchConfig(BackendConfig):
    epochs: int = field(default=4, metadata={"help": "passes over the kept trajectories per fit"})
    learning_rate: float = field(default=3e-3, metadata={"help": "Adam learning rate"})
    batch_size: int = field(default=32, metadata={"help": "episodes per gradient step"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient-norm clip (0: none)"})
    permute_actions: bool = field(default=True, metadata={"help": "relabel actions randomly per sequence (augmentation)"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    negative_loss: str = field(default="unlikelihood", metadata={
        "help": "how an episode with a negative weight (the advantage selector's worse-than-average rollouts) is "
                "trained: unlikelihood minimises -log(1 - p(action)), bounded, but its push grows with p, so on a "
                "confident policy it mostly flattens it; likelihood is the plain signed weighted log-likelihood "
                "(REINFORCE with a baseline: unbiased, but unbounded over several epochs)",
        "choices": ("unlikelihood", "likelihood")})

    def __post_init__(self) -> None:
        if self.negative_loss not in ("unlikelihood", "likelihood"):
            raise BackendError(f"torch backend: negative_loss must be unlikelihood or likelihood, got {self.negative_loss!r}")


class TorchBackend(BaseBackend):
    name = "torch"
    Config = TorchConfig

    def initial_checkpoint(self, agent: str, params: Mapping[str, Any], base_model: str | None,
                           output_dir: str | Path, plan: Any = None) -> Checkpoint:
        """`torch:PATH` plays an existing checkpoint; `torch:new` (or `torch`) builds an untrained one.

        Shape settings (PolicyConfig fields: d_model, n_layers, ...) in `params` size a new
        policy; its kind and number of actions come from the plan's scenarios.
        """
        shape_keys = {f.name for f in fields(PolicyConfig)}
        shape = {k: v for k, v in params.items() if k in shape_keys}
        agent_params = {k: v for k, v in params.items() if k not in shape_keys}
        source = base_model or agent
        if source in (NEW, "torch") and plan is not None and _plan_kinds(plan) == {"answer"}:
            from finetune.backends import torch_graph

            directory, agent_params = torch_graph.new_checkpoint(params, output_dir)
            return Checkpoint(str(directory), f"torch:{directory}", self.name, agent_params)
        if source in (NEW, "torch"):
            if plan is not None:
                shape.setdefault("kind", _plan_kind(plan))
                shape.setdefault("n_actions", _plan_actions(plan))
                shape.setdefault("horizon_scale", _plan_horizon(plan))
            module = _seeded_module(PolicyConfig(**shape), 0)
            directory = Path(output_dir)
            save_policy(module, PolicyConfig(**shape), directory)
        else:
            directory = checkpoint_path(source)
            from agents.graph_policy import is_graph_checkpoint

            if not is_graph_checkpoint(directory):
                PolicyConfig.load(directory)  # fails clearly if it is not a policy checkpoint
        checkpoint = Checkpoint(str(directory), f"torch:{directory}", self.name, agent_params)
        return checkpoint

    def fit(self, base: str, dataset: TrainingSet | Any, config: TorchConfig) -> Checkpoint:
        import torch

        if not isinstance(dataset, TrainingSet):
            raise BackendError(f"torch backend: expected a TrainingSet of kept trajectories, got {type(dataset).__name__}")
        if dataset.episodes.height == 0:
            raise BackendError("torch backend: the training set is empty (no kept trajectories)")
        from agents.graph_policy import is_graph_checkpoint

        if is_graph_checkpoint(checkpoint_path(base)):
            from finetune.backends import torch_graph

            return torch_graph.fit(base, dataset, config, self.name)
        torch.set_num_threads(max(1, config.threads))
        module, policy_config = load_module(checkpoint_path(base))
        batch = episode_tensors(dataset, policy_config)
        def batch_loss(index, generator):
            perms = None
            if generator is not None and config.permute_actions:
                perms = torch.stack([torch.randperm(policy_config.n_actions, generator=generator) for _ in index])
            return _loss(module, policy_config, batch, index, perms, config.negative_loss)

        n = batch["actions"].shape[0]
        initial_loss, epoch_loss, final_loss = maximise_likelihood(module, n, batch["weights"], batch_loss, config)
        directory = Path(config.output_dir)
        save_policy(module, policy_config, directory, {"trained_from": base})
        metrics = {"train_loss": epoch_loss, "initial_loss": initial_loss, "final_loss": final_loss,
                   "examples": float(n), "decisions": float(batch["mask"].sum())}
        return Checkpoint(str(directory), f"torch:{directory}", self.name, {}, metrics)


def _seeded_module(config: PolicyConfig, seed: int):
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_module(config)


def episode_tensors(dataset: TrainingSet, config: PolicyConfig) -> dict[str, Any]:
    """Pad the kept episodes into tensors: actions, rewards, losses, soft targets, mask, weights."""
    import numpy as np
    import polars as pl
    import torch

    k = config.n_actions
    decisions = dataset.decisions.sort(*EPISODE_KEYS, "t")
    columns = [pl.col("action").fill_null(-1), pl.col("reward"), pl.col("policy")]
    if config.kind == "experts":
        losses = pl.col("feedback").str.json_decode(pl.Struct({"losses": pl.List(pl.Float64)})).struct.field("losses")
        columns.append(losses.alias("losses"))
    grouped = decisions.group_by(EPISODE_KEYS, maintain_order=True).agg(*columns)
    weights = dataset.episodes.select(*EPISODE_KEYS, "weight") if "weight" in dataset.episodes.columns else None
    if weights is not None:
        grouped = grouped.join(weights, on=EPISODE_KEYS, how="left").with_columns(pl.col("weight").fill_null(1.0))
    else:
        grouped = grouped.with_columns(weight=pl.lit(1.0))
    n = grouped.height
    horizon = int(grouped.select(pl.col("action").list.len().max()).item())
    actions = np.full((n, horizon), -1, dtype=np.int64)
    rewards = np.zeros((n, horizon))
    loss_array = np.zeros((n, horizon, k))
    targets = np.zeros((n, horizon, k))
    mask = np.zeros((n, horizon))
    import json

    for i, row in enumerate(grouped.iter_rows(named=True)):
        length = len(row["action"])
        acts = np.asarray(row["action"], dtype=np.int64)
        if acts.max() >= k:
            raise BackendError(f"torch backend: action {acts.max()} out of range for a {k}-action policy")
        actions[i, :length] = acts
        rewards[i, :length] = row["reward"]
        if config.kind == "experts":
            if any(x is None for x in row["losses"]):
                raise BackendError("torch backend: experts decisions without loss feedback")
            loss_array[i, :length] = np.asarray(row["losses"], dtype=float)
        for t, (a, policy) in enumerate(zip(acts, row["policy"])):
            if a >= 0:
                targets[i, t, a] = 1.0
            elif policy is not None:
                targets[i, t] = json.loads(policy)
        mask[i, :length] = 1.0
    as_tensor = lambda x, dtype=torch.float32: torch.as_tensor(np.array(x), dtype=dtype)  # noqa: E731
    return {"actions": as_tensor(actions, torch.long), "rewards": as_tensor(rewards), "losses": as_tensor(loss_array),
            "targets": as_tensor(targets), "mask": as_tensor(mask), "weights": as_tensor(grouped["weight"].to_numpy())}


def _loss(module, config: PolicyConfig, batch: dict, index, perms, negative_loss: str = "unlikelihood"):
    """Weighted mean negative log-likelihood of the targets at every valid round.

    Weights may be signed (the advantage selector): the mean is over |weight|, and an episode
    with a negative weight contributes -weight x its log-likelihood (`likelihood`) or |weight| x
    -log(1 - p(target)) (`unlikelihood`), both of which push its actions' probabilities down.
    """
    import torch

    actions, rewards = batch["actions"][index], batch["rewards"][index]
    losses, targets = batch["losses"][index], batch["targets"][index]
    mask, weights = batch["mask"][index], batch["weights"][index]
    if perms is not None:  # relabel: old action a becomes perms[a]
        actions = torch.where(actions >= 0, torch.gather(perms, 1, actions.clamp(min=0)), actions)
        inverse = torch.argsort(perms, dim=1)  # new label j holds old label inverse[j]
        losses = torch.gather(losses, 2, inverse[:, None, :].expand_as(losses))
        targets = torch.gather(targets, 2, inverse[:, None, :].expand_as(targets))
    logits = module(history_features(config, actions, rewards, losses))
    log_probs = torch.log_softmax(logits, dim=-1)
    nll = -(targets * log_probs).sum(-1)
    negative = weights < 0
    if negative.any() and negative_loss == "unlikelihood":
        target_probability = (targets * log_probs.exp()).sum(-1).clamp(max=1 - 1e-6)
        nll = torch.where(negative[:, None], torch.log1p(-target_probability), nll)  # the sign is the weight's
    per_episode = (nll * mask).sum(1) / mask.sum(1).clamp(min=1)
    return (per_episode * weights).sum() / weights.abs().sum().clamp(min=1e-12)


def _plan_kinds(plan) -> set[str]:
    from scenarios import SCENARIOS

    return {SCENARIOS.get(e.family).kind for e in plan.scenarios}


def _plan_kind(plan) -> str:
    kinds = _plan_kinds(plan)
    if len(kinds) != 1 or not kinds <= {"bandit", "experts"}:
        raise BackendError(f"torch backend: a policy plays one kind, bandit or experts; the suite has {sorted(kinds)}")
    return kinds.pop()


def _plan_actions(plan) -> int:
    from scenarios import make

    counts = {make(t.spec).n_actions for t in plan.tasks()}
    if len(counts) != 1:
        raise BackendError(f"torch backend: every task must have the same number of actions, got {sorted(counts)}")
    return counts.pop()


def _plan_horizon(plan) -> int:
    from scenarios import make

    return max(make(t.spec).horizon for t in plan.tasks())
