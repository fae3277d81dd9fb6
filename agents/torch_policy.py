"""A numeric Transformer policy (the paper's numeric RMFT model), played as `torch:PATH`.

The history is a sequence of tokens: token 0 is a start token, token j >= 1 encodes round
j - 1's outcome (bandits: one-hot action times reward and the one-hot action; experts: the
full loss vector), each with a time feature log(1 + j) / log(1 + horizon_scale). Causal
self-attention (one layer by default) and a ReLU MLP, both residual, then a linear head gives
logits over actions at token t: the policy for round t. The head starts at zero, so an
untrained policy is exactly uniform.

Checkpoint directory: `config.json` (PolicyConfig), `model.pt` (torch state_dict, for
training) and `model.npz` (the same weights for inference). Playing needs only numpy: each
decision runs one incremental attention step over cached keys and values, so an episode of
100 rounds costs a few milliseconds and the policy plays through the ordinary runner.

Agent settings: `play` = "sample" (default: sample an action from the policy each round with
the episode's seed) or "policy" (answer with the probability vector where the scenario
accepts one, e.g. experts; this plays the policy's expectation); `temperature` (default 1)
divides the logits before the softmax. Each Decision logs the probabilities it played in
`info["probs"]`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents._base import Agent, AgentFactory, AgentSpec, Decision, EpisodeInfo
from scenarios import ConfigError, Observation, Step

CONFIG_FILE = "config.json"
NUMPY_WEIGHTS = "model.npz"
TORCH_WEIGHTS = "model.pt"
KINDS = ("bandit", "experts")


@dataclass(frozen=True)
class PolicyConfig:
    """The network's shape and what it reads."""

    kind: str = field(default="bandit", metadata={"help": "scenario kind it plays: bandit or experts"})
    n_actions: int = field(default=5, metadata={"help": "arms or experts"})
    d_model: int = field(default=32, metadata={"help": "width of the token embeddings"})
    n_heads: int = field(default=2, metadata={"help": "attention heads"})
    n_layers: int = field(default=1, metadata={"help": "Transformer layers"})
    d_mlp: int = field(default=64, metadata={"help": "hidden width of each layer's MLP"})
    horizon_scale: int = field(default=100, metadata={"help": "horizon the time feature is scaled by"})
    d_context: int = field(default=8, metadata={"help": "width of the Transformer context each action's scorer reads"})
    d_arm: int = field(default=32, metadata={"help": "hidden width of the shared per-action scorer"})
    decay: float = field(default=0.8, metadata={"help": "discount of the recency-weighted per-action statistics"})
    arm_counts: bool = field(default=False, metadata={
        "help": "bandits: the per-arm statistics include pull counts (experts always see every loss)"})

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"torch policy: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not 0.0 < self.decay < 1.0:
            raise ConfigError(f"torch policy: decay must be in (0, 1), got {self.decay}")
        for name in ("n_actions", "d_model", "n_heads", "n_layers", "d_mlp", "horizon_scale", "d_context", "d_arm"):
            if getattr(self, name) < 1:
                raise ConfigError(f"torch policy: {name} must be >= 1, got {getattr(self, name)}")
        if self.n_actions < 2:
            raise ConfigError(f"torch policy: n_actions must be >= 2, got {self.n_actions}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"torch policy: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")

    @property
    def uses_counts(self) -> bool:
        return self.kind != "bandit" or self.arm_counts

    @property
    def n_features(self) -> int:
        # bandit: reward-weighted one-hot, one-hot, start flag, time; experts: losses, start flag, time
        return (2 * self.n_actions if self.kind == "bandit" else self.n_actions) + 2

    @classmethod
    def load(cls, directory: str | Path) -> PolicyConfig:
        path = Path(directory) / CONFIG_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"torch policy: {directory} is not a policy checkpoint (no {CONFIG_FILE})") from None
        return cls(**data["policy"])


def time_feature(j: Any, scale: int) -> Any:
    return np.log1p(j) / math.log1p(scale)


def history_features(config: PolicyConfig, actions, rewards, losses):
    """Token features (batch, T, F) of whole episodes, as torch tensors (training side).

    `actions` (B, T) long (the played action, or -1 when a policy vector was played),
    `rewards` (B, T), `losses` (B, T, K) or None. Token j describes round j - 1.
    """
    import torch

    batch, horizon = actions.shape
    k = config.n_actions
    feats = torch.zeros(batch, horizon, config.n_features)
    if config.kind == "bandit":
        onehot = torch.nn.functional.one_hot(actions.clamp(min=0), k).float() * (actions >= 0).unsqueeze(-1)
        feats[:, 1:, :k] = (onehot * rewards.unsqueeze(-1))[:, :-1]
        feats[:, 1:, k:2 * k] = onehot[:, :-1]
    else:
        feats[:, 1:, :k] = losses[:, :-1]
    feats[:, 0, -2] = 1.0
    feats[:, :, -1] = torch.as_tensor(time_feature(np.arange(horizon), config.horizon_scale), dtype=torch.float32)
    return feats


ARM_STATS = 11  # per-action statistics the shared scorer reads (see arm_statistics)


def token_values(config: PolicyConfig, feats, ones):
    """(value, count) per action of each token: bandits the reward of the pulled arm and a pull
    count; experts minus every expert's loss and a count of 1 (0 at the start token)."""
    k = config.n_actions
    if config.kind == "bandit":
        return feats[..., :k], feats[..., k:2 * k]
    return -feats[..., :k], (1.0 - feats[..., -2:-1]) * ones


def arm_statistics(value, sums, counts, dsums, dcounts, t, log_t, time, scale: int, amax, stack,
                   use_counts: bool = True):
    """Per-action sufficient statistics after a token, shape (..., K, ARM_STATS); numpy or torch.

    The explicit causal pooling makes "which action looks best so far, and how sure is that"
    directly readable: smoothed mean, its gap to the best mean and a leader flag, the same for
    a recency-weighted (discounted) mean, pull fraction, 1/sqrt(pulls), an exploration bonus
    sqrt(log t / pulls), the cumulative gap to the best total, the last value, and time.

    Bandits leave the pull-count statistics out (`use_counts` False, zeros): with them the k
    lowest-regret rollouts teach "keep pulling the arm you have pulled most" (the lucky blind
    commitments) and the loop collapses after a few iterations; from the smoothed means alone
    (prior 0.5, so an unpulled arm keeps a middling value) it learns to follow the evidence.
    """
    counts, dcounts = abs(counts), abs(dcounts)  # non-negative by construction; abs keeps junk input finite
    mean = (sums + 0.5) / (counts + 1.0)
    gap = mean - amax(mean)
    dmean = (dsums + 0.5) / (dcounts + 1.0)
    dgap = dmean - amax(dmean)
    zero = 0.0 * mean
    counted = [counts / (t + 1.0), (counts + 1.0) ** -0.5, (log_t / (counts + 1.0)) ** 0.5,
               (sums - amax(sums)) / math.sqrt(scale)]
    if not use_counts:
        counted = [zero] * len(counted)
    columns = [mean, gap, (gap >= -1e-9) * 1.0, dmean, dgap, *counted, value, time + zero]
    return stack(columns)


def build_module(config: PolicyConfig):
    """The torch network for `config` (head initialised to zero: an exactly uniform policy).

    A causal Transformer over the history tokens gives a context vector per round; each action's
    logit comes from one shared MLP reading that action's statistics (arm_statistics) and the
    context, so what is learnt about one arm applies to every arm.
    """
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
            self.proj = nn.Linear(config.d_model, config.d_model)
            self.up = nn.Linear(config.d_model, config.d_mlp)
            self.down = nn.Linear(config.d_mlp, config.d_model)
            self.norm1 = nn.LayerNorm(config.d_model)
            self.norm2 = nn.LayerNorm(config.d_model)

        def forward(self, x):  # pre-norm: without it the residual stream grew to 1e4+ in training
            batch, length, d = x.shape
            heads, dh = config.n_heads, d // config.n_heads
            q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, heads, dh).permute(2, 0, 3, 1, 4)
            attn = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(attn.transpose(1, 2).reshape(batch, length, d))
            return x + self.down(torch.relu(self.up(self.norm2(x))))

    class PolicyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(config.n_features, config.d_model)
            self.layers = nn.ModuleList(Layer() for _ in range(config.n_layers))
            self.norm = nn.LayerNorm(config.d_model)
            self.context = nn.Linear(config.d_model, config.d_context)
            self.arm_in = nn.Linear(ARM_STATS + config.d_context, config.d_arm)
            self.arm_hidden = nn.Linear(config.d_arm, config.d_arm)
            self.head = nn.Linear(config.d_arm, 1)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

        def statistics(self, feats):
            length = feats.shape[1]
            value, count = token_values(config, feats, torch.ones(config.n_actions))
            j = torch.arange(length, dtype=feats.dtype)
            lag = j[:, None] - j[None, :]
            discount = torch.where(lag >= 0, config.decay ** lag.clamp(min=0), torch.zeros(()))
            t = j[None, :, None]
            return arm_statistics(
                value, value.cumsum(1), count.cumsum(1), torch.einsum("ts,bsk->btk", discount, value),
                torch.einsum("ts,bsk->btk", discount, count), t, torch.log1p(t), feats[..., -1:],
                config.horizon_scale, lambda x: x.amax(-1, keepdim=True), lambda c: torch.stack(c, -1),
                config.uses_counts)

        def forward(self, feats):
            x = self.embed(feats)
            for layer in self.layers:
                x = layer(x)
            stats = self.statistics(feats)  # (batch, T, K, ARM_STATS)
            context = self.context(self.norm(x)).unsqueeze(2).expand(-1, -1, config.n_actions, -1)
            h = torch.relu(self.arm_in(torch.cat([stats, context], -1)))
            h = torch.relu(self.arm_hidden(h))
            return self.head(h).squeeze(-1)  # logits (batch, T, n_actions)

    return PolicyNet()


def save_policy(module, config: PolicyConfig, directory: str | Path, extra: dict | None = None) -> Path:
    """Write config.json, model.pt and model.npz into `directory`."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    torch.save(state, directory / TORCH_WEIGHTS)
    np.savez(directory / NUMPY_WEIGHTS, **{k: v.numpy().astype(np.float64) for k, v in state.items()})
    (directory / CONFIG_FILE).write_text(json.dumps({"policy": asdict(config), **(extra or {})}, indent=2))
    return directory


def load_module(directory: str | Path):
    """(module, config) of a checkpoint directory, for training."""
    import torch

    config = PolicyConfig.load(directory)
    module = build_module(config)
    module.load_state_dict(torch.load(Path(directory) / TORCH_WEIGHTS, weights_only=True))
    return module, config


class NumpyPolicy:
    """Inference with numpy only: one incremental attention step per decision."""

    def __init__(self, config: PolicyConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        w = weights
        self.embed = (w["embed.weight"].T.copy(), w["embed.bias"])
        self.layers = [
            tuple(w[f"layers.{i}.{name}"].T.copy() if name.endswith("weight") else w[f"layers.{i}.{name}"]
                  for name in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias",
                               "up.weight", "up.bias", "down.weight", "down.bias",
                               "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"))
            for i in range(config.n_layers)
        ]
        self.norm = (w["norm.weight"], w["norm.bias"])
        self.context = (w["context.weight"].T.copy(), w["context.bias"])
        self.arm = [(w[f"{name}.weight"].T.copy(), w[f"{name}.bias"]) for name in ("arm_in", "arm_hidden", "head")]
        # arm_in reads [statistics, context]: split its weight so the context part is one vector product
        arm_in = self.arm[0][0]
        self.arm_in_stats, self.arm_in_context = arm_in[:ARM_STATS].copy(), arm_in[ARM_STATS:].copy()
        self.scale = 1.0 / math.sqrt(config.d_model // config.n_heads)

    @classmethod
    def load(cls, directory: str | Path) -> NumpyPolicy:
        config = PolicyConfig.load(directory)
        with np.load(Path(directory) / NUMPY_WEIGHTS) as data:
            return cls(config, {k: data[k] for k in data.files})

    def start(self, horizon: int) -> list[list[np.ndarray]]:
        """Fresh key/value caches for an episode: per layer [keys (H, T, dh), values, length]."""
        c = self.config
        dh = c.d_model // c.n_heads
        layers = [[np.zeros((c.n_heads, horizon, dh)), np.zeros((c.n_heads, horizon, dh)), 0] for _ in self.layers]
        k = c.n_actions
        return layers + [{"sums": np.zeros(k), "counts": np.zeros(k), "dsums": np.zeros(k), "dcounts": np.zeros(k),
                          "t": 0}]

    def step(self, cache: list, features: np.ndarray) -> np.ndarray:
        """Append one token and return the logits at it."""
        c = self.config
        heads, dh = c.n_heads, c.d_model // c.n_heads
        x = features @ self.embed[0] + self.embed[1]
        running = cache[-1]
        value, count = token_values(c, features, np.ones(c.n_actions))
        running["sums"] += value
        running["counts"] += count
        running["dsums"] = c.decay * running["dsums"] + value
        running["dcounts"] = c.decay * running["dcounts"] + count
        t = running["t"]
        running["t"] += 1
        stats = arm_statistics(value, running["sums"], running["counts"], running["dsums"], running["dcounts"],
                               float(t), math.log1p(t), features[-1:], c.horizon_scale,
                               lambda x: x.max(-1, keepdims=True), lambda cols: np.stack(cols, -1),
                               c.uses_counts)
        for (wqkv, bqkv, wp, bp, wu, bu, wd, bd, g1, b1, g2, b2), layer_cache in zip(self.layers, cache[:-1]):
            keys, values, n = layer_cache
            q, k, v = (layer_norm(x, g1, b1) @ wqkv + bqkv).reshape(3, heads, dh)
            keys[:, n] = k
            values[:, n] = v
            n += 1
            layer_cache[2] = n
            scores = (keys[:, :n] @ q[:, :, None])[:, :, 0] * self.scale
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
            attended = (scores[:, None, :] @ values[:, :n]).reshape(-1)
            x = x + attended @ wp + bp
            x = x + np.maximum(layer_norm(x, g2, b2) @ wu + bu, 0.0) @ wd + bd
        context = layer_norm(x, *self.norm) @ self.context[0] + self.context[1]
        (_, b1), (w2, b2), (w3, b3) = self.arm
        h = np.maximum(stats @ self.arm_in_stats + (context @ self.arm_in_context + b1), 0.0)
        h = np.maximum(h @ w2 + b2, 0.0)
        return (h @ w3 + b3)[:, 0]


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    centred = x - x.sum() / x.size
    return centred / math.sqrt(centred @ centred / x.size + 1e-5) * weight + bias


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def explain_policy(fr, row) -> str:
    """A numeric policy's decision: the probabilities its network gave, then what it played."""
    from agents._explain import View

    v = View(fr, row)
    probabilities = f"My policy network, reading the history so far, gives the probabilities {v.listing(v.info['probs'])}"
    if v.policy is not None:
        return f"{probabilities}; I play that distribution."
    return f"{probabilities}; my random draw picked {v.chosen}."


class TorchPolicyAgent(Agent):
    """Plays a numeric policy checkpoint: samples (or plays) its policy every round."""

    explainer = "torch-policy"

    def __init__(self, policy: NumpyPolicy, play: str = "sample", temperature: float = 1.0) -> None:
        self.policy = policy
        self.play = play
        self.temperature = temperature
        config = policy.config
        self._feature_dim = config.n_features
        self._scale = config.horizon_scale

    def reset(self, episode: EpisodeInfo) -> None:
        super().reset(episode)
        config = self.policy.config
        if episode.n_actions != config.n_actions:
            raise ConfigError(f"torch policy plays {config.n_actions} actions, the scenario has {episode.n_actions}")
        self.rng = np.random.default_rng(episode.seed)
        self.cache = self.policy.start(episode.horizon)
        self.next_features = np.zeros(self._feature_dim)
        self.next_features[-2] = 1.0  # the start token
        self.use_policy = self.play == "policy" and episode.accepts_policy

    def decide(self, observation: Observation) -> Decision:
        self.next_features[-1] = time_feature(observation.t, self._scale)
        probs = softmax(self.policy.step(self.cache, self.next_features) / self.temperature)
        info = {"probs": [round(float(p), 4) for p in probs]}
        if self.use_policy:
            return Decision(policy=tuple(float(p) for p in probs), info=info)
        action = int(self.rng.choice(len(probs), p=probs))
        return Decision(action=action, info=info)

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        k = self.policy.config.n_actions
        features = np.zeros(self._feature_dim)
        if self.policy.config.kind == "bandit":
            features[decision.action] = step.reward
            features[k + decision.action] = 1.0
        else:
            features[:k] = step.feedback["losses"]
        self.next_features = features


def checkpoint_path(agent: str) -> Path:
    """The directory named by `torch:PATH`."""
    path = agent.removeprefix("torch:")
    if not path:
        raise ConfigError("torch policy: name a checkpoint directory, e.g. torch:runs/iterate/iter-001/checkpoint")
    return Path(path)


def torch_policy_factory(spec: AgentSpec) -> AgentFactory:
    """Factory for `torch:PATH` agents (see agents._base.resolve); graph checkpoints play graph tasks."""
    directory = checkpoint_path(spec.agent)
    from agents.graph_policy import graph_policy_factory, is_graph_checkpoint

    if is_graph_checkpoint(directory):
        return graph_policy_factory(spec)
    unknown = set(spec.params) - {"play", "temperature", "framing"}
    if unknown:
        raise ConfigError(f"agent {spec.agent!r}: unknown setting(s) {', '.join(sorted(unknown))} "
                         "(settings: play, temperature)")
    play = spec.params.get("play", "sample")
    if play not in ("sample", "policy"):
        raise ConfigError(f"agent {spec.agent!r}: play must be 'sample' or 'policy', got {play!r}")
    temperature = spec.params.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ConfigError(f"agent {spec.agent!r}: temperature must be a number > 0, got {temperature!r}")
    policy = NumpyPolicy.load(directory)
    kinds = frozenset({policy.config.kind})
    return AgentFactory(spec, lambda: TorchPolicyAgent(policy, play, float(temperature)), kinds)
