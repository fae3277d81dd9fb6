"""The torch backend's fit for graph policies: maximum likelihood of the kept paths.

Each kept episode gives its graph (the episode's `scenario_summary`) and its answer (the
decision's feedback `answer`: the node sequence). The loss is the mean over kept paths of
-log p(path) = -sum_j log p(path[j+1] | path[:j+1]), each step a softmax over the unvisited
neighbours of the current node, as the agent samples them (agents.graph_policy).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from agents.graph_policy import GraphPolicyConfig, build_module, load_module, node_features, save_policy
from finetune._backend import BackendError, Checkpoint, TrainingSet

EPISODE_KEYS = ["agent", "task_id", "rollout"]


def new_checkpoint(params: Mapping[str, Any], directory: str | Path, seed: int = 0) -> tuple[Path, dict]:
    """An untrained graph policy (shape from GraphPolicyConfig keys in `params`); returns the other params."""
    import torch

    keys = {f.name for f in fields(GraphPolicyConfig)}
    config = GraphPolicyConfig(**{k: v for k, v in params.items() if k in keys})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = build_module(config)
    return save_policy(module, config, directory), {k: v for k, v in params.items() if k not in keys}


def path_tensors(dataset: TrainingSet) -> dict[str, Any]:
    """Padded graphs and kept paths: feats, adjacency, node mask, current/next nodes, allowed moves."""
    import polars as pl
    import torch

    answers = dataset.decisions.select(
        *EPISODE_KEYS, pl.col("feedback").str.json_decode(pl.Struct({"answer": pl.List(pl.Int64)}))
        .struct.field("answer").alias("answer"))
    episodes = dataset.episodes.select(*EPISODE_KEYS, "scenario_summary",
                                       *(["weight"] if "weight" in dataset.episodes.columns else []))
    rows = episodes.join(answers, on=EPISODE_KEYS, how="inner").sort(EPISODE_KEYS)
    problems = [json.loads(s) for s in rows["scenario_summary"]]
    paths = rows["answer"].to_list()
    if any("edges" not in p for p in problems) or any(p is None or len(p) < 2 for p in paths):
        raise BackendError("torch backend: graph policies learn from kept path answers of graph tasks "
                           "(every kept episode needs a path of at least two nodes)")
    n_max = max(p["n_nodes"] for p in problems)
    s_max = max(len(path) - 1 for path in paths)
    batch = len(paths)
    feats = np.zeros((batch, n_max, 3), dtype=np.float32)
    adjacency = np.zeros((batch, n_max, n_max), dtype=np.float32)
    node_mask = np.zeros((batch, n_max), dtype=np.float32)
    current = np.zeros((batch, s_max), dtype=np.int64)
    target = np.zeros((batch, s_max), dtype=np.int64)
    allowed = np.zeros((batch, s_max, n_max), dtype=bool)
    step_mask = np.zeros((batch, s_max), dtype=np.float32)
    for b, (problem, path) in enumerate(zip(problems, paths)):
        n = problem["n_nodes"]
        for u, v in problem["edges"]:
            adjacency[b, u, v] = adjacency[b, v, u] = 1.0
        feats[b, :n] = node_features(adjacency[b, :n, :n], problem["source"], problem["target"])
        node_mask[b, :n] = 1.0
        for j, (u, v) in enumerate(zip(path, path[1:])):
            current[b, j], target[b, j], step_mask[b, j] = u, v, 1.0
            allowed[b, j] = adjacency[b, u] > 0
            allowed[b, j, path[:j + 1]] = False
            if not allowed[b, j, v]:
                raise BackendError(f"torch backend: kept path {path} leaves the graph or revisits a node")
    weights = np.array(rows["weight"].to_numpy()) if "weight" in rows.columns else np.ones(batch)
    as_tensor = torch.as_tensor
    return {"feats": as_tensor(feats), "adjacency": as_tensor(adjacency), "node_mask": as_tensor(node_mask),
            "current": as_tensor(current), "target": as_tensor(target), "allowed": as_tensor(allowed),
            "step_mask": as_tensor(step_mask), "weights": as_tensor(weights, dtype=torch.float32)}


def _loss(module, batch: dict, index):
    import torch

    states = module.encode(batch["feats"][index], batch["adjacency"][index], batch["node_mask"][index])
    logits = module.next_logits(states, batch["current"][index]).masked_fill(~batch["allowed"][index], float("-inf"))
    log_probs = torch.log_softmax(logits, -1)
    picked = torch.gather(log_probs, 2, batch["target"][index][..., None]).squeeze(-1)
    nll = -(picked.masked_fill(batch["step_mask"][index] == 0, 0.0)).sum(1)  # -log p(path)
    weights = batch["weights"][index]
    return (nll * weights).sum() / weights.sum()


def fit(base: str, dataset: TrainingSet, config, backend_name: str) -> Checkpoint:
    import torch

    from agents.torch_policy import checkpoint_path
    from finetune.backends._train import maximise_likelihood

    torch.set_num_threads(max(1, config.threads))
    module, policy_config = load_module(checkpoint_path(base))
    module.train()
    batch = path_tensors(dataset)
    n = batch["current"].shape[0]
    initial_loss, epoch_loss, final_loss = maximise_likelihood(
        module, n, batch["weights"], lambda index, generator: _loss(module, batch, index), config)
    directory = Path(config.output_dir)
    save_policy(module, policy_config, directory, {"trained_from": base})
    metrics = {"train_loss": epoch_loss, "initial_loss": initial_loss, "final_loss": final_loss,
               "examples": float(n), "decisions": float(batch["step_mask"].sum())}
    return Checkpoint(str(directory), f"torch:{directory}", backend_name, {}, metrics)
