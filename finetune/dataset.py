"""Regret-ranked datasets: from run directories to fine-tuning data (Iterative RMFT, distillation, RISE).

    from finetune.dataset import KLowestRegret, DatasetConfig, build_dataset
    result = build_dataset(["runs/a"], KLowestRegret(k=2), "data/rmft-1")

`out` becomes a directory with `train.jsonl`, `validation.jsonl` (and `.parquet` twins) and
`metadata.json` (source runs, selector, counts before and after, per-task acceptance rates,
mean regret of kept vs all, a sha256 of the JSONL bytes). The split is by task: every
trajectory of a task lands on the same side. Two builds from the same runs with the same
settings write byte-identical JSONL files.

Row formats (`DatasetConfig.format`):

- `messages`: TRL conversational, `{"messages": [{"role", "content"}, ...], run, agent,
  task_id, rollout, final_regret[, t]}` (the provenance columns let you audit any row; drop
  them with `dataset.select_columns(["messages"])` if a trainer complains);
- `openai`: OpenAI fine-tuning JSONL, `{"messages": [...]}` only;
- `prompt-completion`: TRL conversational prompt-completion, `{"prompt": [...], "completion":
  [final assistant turn]}` plus provenance.

`per="episode"` writes each trajectory as one multi-turn chat (what RMFT trains on);
`per="decision"` writes one example per decision with its full context.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune._render import (
    CHAT,
    DATASET_FORMATS,
    DEFAULT_FRAMING,
    FORMATS,
    REBUILT,
    RETRY_PROMPT,
    RISE_FILTERS,
    VERBALISED,
    EpisodeText,
    RiseEpisode,
    RiseTurn,
    answer_line,
    baseline_rationale,
    decision_chats,
    episode_chat,
    format_example,
    rise_examples,
    verbalise_decision,
)
from finetune._select import (
    EPISODE_KEY,
    AdvantageWeighted,
    KLowestRegret,
    LowestRegretFraction,
    RegretThreshold,
    Selector,
    TopReward,
    eligible_episodes,
    rank_episodes,
    select_decisions,
    select_episodes,
)
from harness import read_plan
from scenarios import ConfigError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "AdvantageWeighted",
    "DATASET_FORMATS",
    "FORMATS",
    "RETRY_PROMPT",
    "RISE_FILTERS",
    "DatasetConfig",
    "DatasetResult",
    "EpisodeText",
    "KLowestRegret",
    "LowestRegretFraction",
    "RegretThreshold",
    "RiseEpisode",
    "RiseTurn",
    "Selector",
    "TopReward",
    "answer_line",
    "baseline_rationale",
    "build_dataset",
    "eligible_episodes",
    "load_runs",
    "build_rise_dataset",
    "rank_episodes",
    "rise_episodes",
    "rise_examples",
    "select_decisions",
    "select_episodes",
    "split_tasks",
    "verbalise_decision",
    "write_rise",
]

PERS = ("episode", "decision")
# decision columns the renderer reads (projection pushdown keeps the rest on disk)
_RENDER_COLUMNS = ("t", "action", "policy", "answer", "context", "feedback", "reward", "raw_output", "messages",
                   "info")


@dataclass(frozen=True)
class DatasetConfig:
    """How kept trajectories are rendered and split."""

    format: str = field(default="messages", metadata={"help": f"row format: {', '.join(FORMATS)} (or a registered one)"})
    per: str = field(default="episode", metadata={"help": "one example per 'episode' (multi-turn) or per 'decision'"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of tasks (never of trajectories) held out"})
    seed: int = field(default=0, metadata={"help": "seed of the task split"})
    drop_invalid: bool = field(default=True, metadata={"help": "exclude trajectories with parse failures or fallbacks"})
    agents: tuple[str, ...] | None = field(default=None, metadata={"help": "only these agents' trajectories"})
    parquet: bool = field(default=True, metadata={"help": "also write train/validation .parquet files"})

    def __post_init__(self) -> None:
        DATASET_FORMATS.get(self.format)  # an unknown name raises with suggestions
        if self.per not in PERS:
            raise ConfigError(f"per must be 'episode' or 'decision', got {self.per!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0.0 <= self.val_fraction < 1.0):
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.agents is not None:
            object.__setattr__(self, "agents", tuple(self.agents))


@dataclass(frozen=True)
class DatasetResult:
    directory: Path
    train_path: Path
    validation_path: Path
    metadata_path: Path
    n_train: int
    n_validation: int
    metadata: dict[str, Any]


def load_runs(run_dirs: Sequence[str | Path]) -> tuple[dict[str, pl.LazyFrame], pl.LazyFrame]:
    """Each run's decisions (a LazyFrame per run name) and all runs' episodes, with a `run` column.

    A run is named by its directory's name, so several runs must have distinct names.
    """
    import polars as pl

    from harness import load_run

    if not run_dirs:
        raise ConfigError("no run directory given")
    names = [Path(d).name for d in run_dirs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"several run directories are named {duplicates[0]!r}; runs are told apart by "
                          "directory name, so rename one")
    frames = [load_run(d) for d in run_dirs]
    return {name: f[0] for name, f in zip(names, frames)}, pl.concat([f[1] for f in frames])


def split_tasks(task_ids: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Assign whole tasks to train or validation: order tasks by a seeded hash, hold out the first.

    round(val_fraction * n) tasks are held out, at least one when val_fraction > 0 and there
    are two or more tasks, and never all of them.
    """
    tasks = sorted(set(task_ids))
    n = len(tasks)
    n_val = round(val_fraction * n)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    order = sorted(tasks, key=lambda t: hashlib.blake2b(f"{seed}\x00{t}".encode(), digest_size=8).digest())
    validation = set(order[:n_val])
    return [t for t in tasks if t not in validation], [t for t in tasks if t in validation]


class _Stories:
    """Rebuilds scenario instances from each run's plan to tell episodes through their framing."""

    def __init__(self, run_dirs: Sequence[str | Path]) -> None:
        self._plans = {Path(d).name: Path(d) for d in run_dirs}
        self._params: dict[str, dict[str, Any]] = {}
        self._cache: dict[tuple, EpisodeText] = {}

    def _scenario_params(self, run: str, scenario_id: str) -> dict[str, Any]:
        if run not in self._params:
            plan = read_plan(self._plans[run])
            self._params[run] = {entry["id"]: entry.get("params", {}) for entry in plan["scenarios"]}
        try:
            return self._params[run][scenario_id]
        except KeyError:
            raise ConfigError(f"run {run!r}: scenario {scenario_id!r} is not in its plan.json") from None

    def __call__(self, episode: dict[str, Any]) -> EpisodeText:
        from scenarios import make
        from scenarios.framing import get_framing

        key = (episode["run"], episode["scenario_id"], episode["instance_seed"], episode["framing"])
        if key not in self._cache:
            scenario = make(episode["family"], self._scenario_params(episode["run"], episode["scenario_id"]),
                            episode["instance_seed"])
            framing = get_framing(episode["framing"] or DEFAULT_FRAMING)
            self._cache[key] = EpisodeText(framing, framing.describe(scenario), scenario.kind,
                                           int(scenario.horizon), int(scenario.n_actions), scenario.action_space)
        return self._cache[key]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> bytes:
    data = "".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows).encode()
    path.write_bytes(data)
    return data


def _write_parquet(path: Path, rows: list[dict[str, Any]], like: list[dict[str, Any]]) -> None:
    import polars as pl

    frame = pl.DataFrame(rows) if rows else pl.DataFrame(like).clear()
    frame.write_parquet(path)


def build_dataset(run_dirs: Sequence[str | Path], selector: Selector, out: str | Path,
                  config: DatasetConfig | None = None) -> DatasetResult:
    """Select trajectories from `run_dirs` with `selector`, render them and write the dataset to `out`."""
    import polars as pl

    config = config or DatasetConfig()
    run_dirs = [Path(d) for d in run_dirs]
    decisions, episodes = load_runs(run_dirs)

    candidates = episodes.filter(pl.col("status") == "finished")
    if config.agents:
        candidates = candidates.filter(pl.col("agent").is_in(list(config.agents)))
    eligible = eligible_episodes(episodes, drop_invalid=config.drop_invalid, agents=config.agents)
    ranked = rank_episodes(eligible, selector).collect()
    candidates = candidates.select("task_id", "final_regret", "total_reward").collect()
    all_episodes = episodes.select(pl.len()).collect().item()
    kept = ranked.filter(pl.col("kept"))
    if kept.height == 0:
        raise ConfigError(f"selector {selector.name!r} kept no trajectory ({ranked.height} eligible of "
                          f"{candidates.height} finished episodes)")
    if kept["weight"].min() < 0 or kept["weight"].max() != kept["weight"].min():
        raise ConfigError(f"selector {selector.name!r} weights its trajectories, which a text dataset cannot carry; "
                          "use it in the RMFT loop with the torch backend")

    columns = [*EPISODE_KEY, *_RENDER_COLUMNS]
    # streaming: row group by row group, so only the kept rows are ever held in memory
    kept_rows = select_decisions({run: frame.select(columns) for run, frame in decisions.items()},
                                 kept).collect(engine="streaming")
    by_episode: dict[tuple, list[dict[str, Any]]] = {}
    for row in kept_rows.iter_rows(named=True):
        by_episode.setdefault(tuple(row[k] for k in EPISODE_KEY), []).append(row)
    for rows in by_episode.values():  # already in play order in a run's export; linear when sorted
        rows.sort(key=lambda row: row["t"])

    train_tasks, validation_tasks = split_tasks(kept["task_id"].to_list(), config.val_fraction, config.seed)
    held_out = set(validation_tasks)
    stories = _Stories(run_dirs)
    train: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    modes = {CHAT: 0, REBUILT: 0, VERBALISED: 0}
    for episode in kept.iter_rows(named=True):  # ordered by task, then by rank
        key = tuple(episode[k] for k in EPISODE_KEY)
        rows = by_episode.get(key, [])
        if not rows:
            raise ConfigError(f"episode {key} has no decision rows in its run")
        provenance = {k: episode[k] for k in EPISODE_KEY} | {"final_regret": episode["final_regret"]}
        text = lambda episode=episode: stories(episode)  # noqa: E731  (told through the framing only if needed)
        target = validation if episode["task_id"] in held_out else train
        if config.per == "episode":
            chat, mode = episode_chat(text, rows, episode.get("explainer"))
            target.append(format_example(chat, config.format, provenance))
        else:
            chats, mode = decision_chats(text, rows, episode.get("explainer"))
            for row, chat in zip(rows, chats):
                target.append(format_example(chat, config.format, provenance | {"t": row["t"]}))
        modes[mode] += 1

    per_task_candidates = dict(candidates.group_by("task_id").len().iter_rows())
    per_task_kept = dict(kept.group_by("task_id").len().iter_rows())
    metadata = {
        "format": config.format,
        "per": config.per,
        "config": asdict(config) | {"agents": list(config.agents) if config.agents else None},
        "selector": selector.describe(),
        "sources": [{"path": str(d), "run": d.name} for d in run_dirs],
        "counts": {
            "episodes": all_episodes,
            "finished": candidates.height,
            "eligible": ranked.height,
            "kept": kept.height,
            "decisions_kept": kept_rows.height,
            "tasks": len(per_task_candidates),
            "tasks_kept": len(per_task_kept),
            "examples": {"train": len(train), "validation": len(validation)},
        },
        "acceptance_rate": {
            "overall": kept.height / candidates.height,
            "per_task": {t: per_task_kept.get(t, 0) / n for t, n in sorted(per_task_candidates.items())},
        },
        "mean_regret": {"kept": _mean(kept["final_regret"].to_list()),
                        "eligible": _mean(ranked["final_regret"].to_list()),
                        "all": _mean(candidates["final_regret"].to_list())},
        "mean_reward": {"kept": _mean(kept["total_reward"].to_list()),
                        "all": _mean(candidates["total_reward"].to_list())},
        "episode_modes": {k: v for k, v in modes.items() if v},
        "split": {"by": "task_id", "val_fraction": config.val_fraction, "seed": config.seed,
                  "train_tasks": train_tasks, "validation_tasks": validation_tasks},
    }
    return _write_dataset(Path(out), train, validation, metadata, parquet=config.parquet)


def _write_dataset(directory: Path, train: list[dict], validation: list[dict], metadata: dict,
                   parquet: bool = True) -> DatasetResult:
    """Write the split as JSONL (+ Parquet) and metadata.json with the content hashes."""
    directory.mkdir(parents=True, exist_ok=True)
    train_path, validation_path = directory / "train.jsonl", directory / "validation.jsonl"
    train_bytes = _write_jsonl(train_path, train)
    validation_bytes = _write_jsonl(validation_path, validation)
    for name, rows in (("train.parquet", train), ("validation.parquet", validation)):
        if parquet:
            _write_parquet(directory / name, rows, train or validation)
        else:  # never leave an earlier build's Parquet beside this build's JSONL
            (directory / name).unlink(missing_ok=True)
    metadata = metadata | {"sha256": {"train.jsonl": hashlib.sha256(train_bytes).hexdigest(),
                                      "validation.jsonl": hashlib.sha256(validation_bytes).hexdigest(),
                                      "content": hashlib.sha256(train_bytes + validation_bytes).hexdigest()}}
    metadata_path = directory / "metadata.json"
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return DatasetResult(directory, train_path, validation_path, metadata_path, len(train), len(validation), metadata)


def rise_episodes(run_dirs: Sequence[str | Path], agents: Sequence[str] | None = None,
                  stop_at_success: bool = True) -> list[RiseEpisode]:
    """The finished answer-scenario episodes of runs as `RiseEpisode`s, in (run, agent, task, rollout) order.

    The prompt is the first turn's exact messages; each attempt is the model's reply with the
    scenario's reward, followed by the user turn the next attempt saw (the retry prompt).
    Attempts after the first correct one are dropped (`stop_at_success`, as the reference does
    when it builds data): in a run without an oracle the retry prompt follows a correct answer
    too, and training on what came after would teach abandoning right answers. `agents`
    keeps only those agents' episodes: a stronger agent's runs give distillation data.
    """
    import polars as pl

    from scenarios.self_correction import ANSWER_KIND

    decisions, episodes = load_runs(run_dirs)
    finished = episodes.filter((pl.col("status") == "finished") & (pl.col("kind") == ANSWER_KIND))
    if agents:
        finished = finished.filter(pl.col("agent").is_in(list(agents)))
    kept = finished.select(*EPISODE_KEY).collect()
    if kept.height == 0:
        raise ValueError("no finished answer-scenario episode in the runs" + (f" for agents {list(agents)}" if agents else ""))
    rows = select_decisions({run: frame.select(*EPISODE_KEY, "scenario_id", "t", "raw_output", "reward", "messages",
                                               "feedback") for run, frame in decisions.items()}, kept).collect()
    by_episode: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows.iter_rows(named=True):
        by_episode.setdefault(tuple(row[k] for k in EPISODE_KEY), []).append(row)
    out = []
    for key in sorted(by_episode):
        turns_rows = sorted(by_episode[key], key=lambda r: r["t"])
        if json.loads(turns_rows[0]["feedback"] or "{}").get("correct") is None:
            continue  # an answer scenario that reports no verdict
        prompt = json.loads(turns_rows[0]["messages"])
        turns = []
        for i, row in enumerate(turns_rows):
            following = json.loads(turns_rows[i + 1]["messages"])[-1]["content"] if i + 1 < len(turns_rows) else RETRY_PROMPT
            turns.append(RiseTurn(row["raw_output"] or "", float(row["reward"]), following))
            if stop_at_success and json.loads(row["feedback"]).get("correct"):
                break
        run, agent, task_id, rollout = key
        out.append(RiseEpisode(prompt, turns, task_id, {"run": run, "agent": agent, "rollout": rollout,
                                                        "scenario_id": turns_rows[0]["scenario_id"]}))
    return out


def build_rise_dataset(run_dirs: Sequence[str | Path], out: str | Path, *, criterion: str = "all", tau: float = 0.4,
                       fmt: str = "messages", agents: Sequence[str] | None = None, val_fraction: float = 0.1,
                       seed: int = 0) -> DatasetResult:
    """RISE reward-weighted data from the answer-scenario episodes of real runs (see `rise_episodes`)."""
    episodes = rise_episodes(run_dirs, agents)
    sources = {"sources": [{"path": str(d), "run": Path(d).name} for d in run_dirs],
               "agents": list(agents) if agents else None}
    return write_rise(episodes, out, tau=tau, fmt=fmt, val_fraction=val_fraction, seed=seed, criterion=criterion,
                      metadata=sources)


def write_rise(episodes: Sequence[RiseEpisode], out: str | Path, *, tau: float = 0.4, fmt: str = "messages",
               val_fraction: float = 0.1, seed: int = 0, criterion: str = "all",
               metadata: dict[str, Any] | None = None) -> DatasetResult:
    """Write RISE reward-weighted self-correction data (see `rise_examples`), split by task."""
    rows = rise_examples(episodes, tau, fmt, criterion)
    if not rows:
        raise ValueError(f"RISE filter {criterion!r} kept no attempt of {len(episodes)} episodes")
    train_tasks, validation_tasks = split_tasks([r["task_id"] for r in rows], val_fraction, seed)
    held_out = set(validation_tasks)
    train = [r for r in rows if r["task_id"] not in held_out]
    validation = [r for r in rows if r["task_id"] in held_out]
    rewards = [r["reward"] for r in rows]
    metadata = {
        **(metadata or {}),
        "format": f"rise/{fmt}", "tau": tau, "filter": criterion,
        "counts": {"episodes": len(episodes), "attempts": sum(len(e.turns) for e in episodes),
                   "examples": {"train": len(train), "validation": len(validation)},
                   "by_reward": {str(r): rewards.count(r) for r in sorted(set(rewards))}},
        "split": {"by": "task_id", "val_fraction": val_fraction, "seed": seed,
                  "train_tasks": train_tasks, "validation_tasks": validation_tasks},
    }
    return _write_dataset(Path(out), train, validation, metadata)
