"""Numeric agents for graph tasks: BFS and random-walk baselines, and a graph Transformer policy.

The policy (`torch:PATH` whose config.json holds `graph_policy`) reads the public problem of
a `ProblemObservation` (graph, source, target) and writes a path one node at a time:

- encoding: each node is a token with features (is source, is target, degree / n); a single
  Transformer layer whose attention is restricted to a node's neighbours and itself is applied
  `rounds` times with shared weights (a looped Transformer), so information travels one edge
  per round and what is learnt on short paths can carry over to longer ones;
- decoding: from the current node, a zero-initialised head scores each unvisited neighbour
  from (its state, the current node's state, their product) and the next node is sampled from
  the softmax; the path ends at the target, or fails at a dead end. An untrained policy is
  therefore exactly a uniform random simple walk.

Every agent here answers with the path as reply text in the framing's node names ("D -> C -> B",
what the store and datasets show) and logs the node indices in `info["path"]` (the policy also
the path's log-probability).
Inference and training share `build_module`; training is the torch backend's `fit`
(maximum likelihood of the kept paths).
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agents._base import Agent, AgentFactory, AgentSpec, Decision, EpisodeInfo, baseline
from scenarios import Observation

CONFIG_KEY = "graph_policy"
N_FEATURES = 3


@dataclass(frozen=True)
class GraphPolicyConfig:
    d_model: int = field(default=32, metadata={"help": "width of the node states"})
    n_heads: int = field(default=2, metadata={"help": "attention heads"})
    d_mlp: int = field(default=64, metadata={"help": "hidden width of the layer's MLP"})
    rounds: int = field(default=8, metadata={"help": "times the shared layer is applied (edges information travels)"})

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "d_mlp", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"graph policy: {name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"graph policy: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")


def is_graph_checkpoint(directory: str | Path) -> bool:
    path = Path(directory) / "config.json"
    return path.exists() and CONFIG_KEY in json.loads(path.read_text())


def load_config(directory: str | Path) -> GraphPolicyConfig:
    return GraphPolicyConfig(**json.loads((Path(directory) / "config.json").read_text())[CONFIG_KEY])


def node_features(adjacency: np.ndarray, source: int, target: int) -> np.ndarray:
    n = adjacency.shape[0]
    feats = np.zeros((n, N_FEATURES), dtype=np.float32)
    feats[source, 0] = 1.0
    feats[target, 1] = 1.0
    feats[:, 2] = adjacency.sum(1) / max(n, 1)
    return feats


def build_module(config: GraphPolicyConfig):
    """The torch network (batched over padded graphs); its head starts at zero (uniform walks)."""
    import torch
    from torch import nn

    class GraphPolicyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = config.d_model
            self.embed = nn.Linear(N_FEATURES, d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.up = nn.Linear(d, config.d_mlp)
            self.down = nn.Linear(config.d_mlp, d)
            self.norm1, self.norm2, self.norm = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
            self.score_in = nn.Linear(3 * d, config.d_mlp)
            self.head = nn.Linear(config.d_mlp, 1)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

        def encode(self, feats, adjacency, node_mask):
            """Node states (B, N, d) of padded graphs: feats (B, N, F), adjacency (B, N, N), node_mask (B, N)."""
            batch, n, _ = feats.shape
            heads, dh = config.n_heads, config.d_model // config.n_heads
            eye = torch.eye(n, dtype=torch.bool).expand(batch, n, n)
            allowed = ((adjacency > 0) | eye) & node_mask[:, None, :].bool()
            bias = torch.zeros(batch, 1, n, n).masked_fill(~allowed[:, None], float("-inf"))
            x = self.embed(feats)
            for _ in range(config.rounds):
                q, k, v = self.qkv(self.norm1(x)).view(batch, n, 3, heads, dh).permute(2, 0, 3, 1, 4)
                attended = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
                x = x + self.proj(attended.transpose(1, 2).reshape(batch, n, config.d_model))
                x = x + self.down(torch.relu(self.up(self.norm2(x))))
            return self.norm(x)

        def next_logits(self, states, current):
            """Logits (B, S, N) of every node as the successor of `current` (B, S) node indices."""
            here = torch.gather(states, 1, current[..., None].expand(-1, -1, states.shape[-1]))  # (B, S, d)
            there = states[:, None, :, :].expand(-1, here.shape[1], -1, -1)  # (B, S, N, d)
            here = here[:, :, None, :].expand_as(there)
            hidden = torch.relu(self.score_in(torch.cat([there, here, there * here], -1)))
            return self.head(hidden).squeeze(-1)

    return GraphPolicyNet()


def save_policy(module, config: GraphPolicyConfig, directory: str | Path, extra: dict | None = None) -> Path:
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, directory / "model.pt")
    (directory / "config.json").write_text(json.dumps({CONFIG_KEY: asdict(config), **(extra or {})}, indent=2))
    return directory


def load_module(directory: str | Path):
    import torch

    config = load_config(directory)
    module = build_module(config)
    module.load_state_dict(torch.load(Path(directory) / "model.pt", weights_only=True))
    module.eval()
    return module, config


def problem_of(observation: Observation):
    problem = getattr(observation, "problem", None)
    if problem is None:
        raise ValueError("this agent plays graph tasks: the observation carries no problem")
    return problem


def _answer(observation: Observation, path: list[int], info: dict | None = None) -> Decision:
    """The path as reply text in the framing's node names (what the store and datasets show)."""
    text = observation.path_text(path)
    return Decision(answer=text, raw_output=f"ANSWER: {text}", info={"path": path, **(info or {})})


def _walk(problem, choose) -> list[int]:
    """A simple path from the source, extended by `choose(path, options)` until the target or a dead end."""
    neighbours = problem.graph.neighbours()
    path, seen = [problem.source], {problem.source}
    while path[-1] != problem.target:
        options = [v for v in neighbours[path[-1]] if v not in seen]
        if not options:
            break
        node = choose(path, options)
        path.append(node)
        seen.add(node)
    return path


class GraphPolicyAgent(Agent):
    def __init__(self, module, temperature: float = 1.0) -> None:
        self.module = module
        self.temperature = temperature

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        self.rng = np.random.default_rng(episode.seed)

    def decide(self, observation: Observation) -> Decision:
        import torch

        problem = problem_of(observation)
        adjacency = problem.graph.adjacency_matrix()
        n = adjacency.shape[0]
        with torch.no_grad():
            states = self.module.encode(torch.from_numpy(node_features(adjacency, problem.source, problem.target))[None],
                                        torch.from_numpy(adjacency)[None], torch.ones(1, n))
            logits = self.module.next_logits(states, torch.arange(n)[None])[0].numpy().astype(np.float64)
        log_prob = 0.0

        def choose(path: list[int], options: list[int]) -> int:
            nonlocal log_prob
            scores = logits[path[-1], options] / max(self.temperature, 1e-6)
            probs = np.exp(scores - scores.max())
            probs /= probs.sum()
            pick = int(self.rng.choice(len(options), p=probs))
            log_prob += math.log(probs[pick])
            return options[pick]

        path = _walk(problem, choose)
        return _answer(observation, path, {"log_prob": round(log_prob, 4)})


def graph_policy_factory(spec: AgentSpec) -> AgentFactory:
    import torch

    unknown = set(spec.params) - {"temperature", "threads", "framing", "play"}
    if unknown:
        raise ValueError(f"agent {spec.agent!r}: unknown setting(s) {', '.join(sorted(unknown))} "
                         "(settings: temperature, threads)")
    temperature = float(spec.params.get("temperature", 1.0))
    # one decision is a few small matrix products: extra intra-op threads only spin (measured
    # 180 ms of CPU per decision with 2 threads on a loaded 2-core machine, 1.6 ms with 1)
    torch.set_num_threads(int(spec.params.get("threads", 1)))
    module, _ = load_module(spec.agent.removeprefix("torch:"))  # torch_policy_factory has checked the path
    return AgentFactory(spec, lambda: GraphPolicyAgent(module, temperature), frozenset({"answer"}))


@baseline("bfs", kinds=("answer",))
class BreadthFirst(Agent):
    """Exact: a shortest path by breadth-first search (reads only the public graph)."""

    def decide(self, observation: Observation) -> Decision:
        problem = problem_of(observation)
        neighbours = problem.graph.neighbours()
        parent = {problem.source: problem.source}
        queue = deque([problem.source])
        while queue:
            u = queue.popleft()
            for v in neighbours[u]:
                if v not in parent:
                    parent[v] = u
                    queue.append(v)
        if problem.target not in parent:
            return Decision(answer="none", raw_output="ANSWER: none")
        path = [problem.target]
        while path[-1] != problem.source:
            path.append(parent[path[-1]])
        return _answer(observation, path[::-1])


@baseline("random-walk", kinds=("answer",))
class RandomWalk(Agent):
    """A uniform random simple walk from the source (what an untrained graph policy plays)."""

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        self.rng = np.random.default_rng(episode.seed)

    def decide(self, observation: Observation) -> Decision:
        path = _walk(problem_of(observation), lambda path, options: options[int(self.rng.integers(len(options)))])
        return _answer(observation, path)
