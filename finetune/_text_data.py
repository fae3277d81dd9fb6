"""Chat examples for the text backends (`hf`, `unsloth`, `api`), from a TrainingSet or a dataset file.

Every example is `{"messages": [...], "weight": float}`. Messages may carry `"train": false`
(RISE: earlier attempts are context, not targets); `weight` scales the example's loss (RISE's
exp(reward / tau); 1.0 when absent).

Sources:
- a `TrainingSet` (what the RMFT loop hands a backend): each kept episode becomes one
  multi-turn chat through the dataset builder's renderer (`finetune._render.episode_chat`),
  or with `per="decision"` one chat per decision (exactly the messages the model saw, then its
  answer: `decision_chats`; with `relabel`, also under every cyclic relabelling of a summary
  prompt's options: `relabelled_chats`), weighted by the episode's `weight` column. Decisions whose answer
  was a recorded fallback (never valid) are never trained on: their chats are left out, and
  in an episode chat their assistant turns are marked `"train": false`;
- a path: a dataset directory written by `regret dataset` (its `train.jsonl`), or a `.jsonl` /
  `.parquet` file with a `messages` column (or TRL's conversational `prompt` + `completion`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from finetune._backend import TrainingSet
from scenarios import UsageError


class DatasetError(UsageError):
    """A dataset a text backend cannot train on; the message names the problem."""


def chat_examples(dataset: TrainingSet | str | Path) -> list[dict[str, Any]]:
    """The examples of `dataset`, in order, each with `messages` and `weight`."""
    rows = _from_training_set(dataset) if isinstance(dataset, TrainingSet) else _from_path(Path(dataset))
    if not rows:
        raise DatasetError(f"dataset {_describe(dataset)} has no examples")
    return [_check(row, i, dataset) for i, row in enumerate(rows)]


def _describe(dataset: Any) -> str:
    return f"in {dataset.directory}" if isinstance(dataset, TrainingSet) else str(dataset)


def _from_training_set(dataset: TrainingSet) -> list[dict[str, Any]]:
    from agents._base import PARSE_FALLBACK
    from finetune._render import decision_chats, episode_chat, relabelled_chats
    from finetune._select import EPISODE_KEY
    from finetune.dataset import _Stories

    stories = _Stories(dataset.run_dirs)
    by_episode: dict[tuple, list[dict[str, Any]]] = {}
    for row in dataset.decisions.iter_rows(named=True):
        by_episode.setdefault(tuple(row[k] for k in EPISODE_KEY), []).append(row)
    has_weight = "weight" in dataset.episodes.columns
    examples = []
    for episode in dataset.episodes.iter_rows(named=True):
        key = tuple(episode[k] for k in EPISODE_KEY)
        rows = sorted(by_episode.get(key, []), key=lambda r: r["t"])
        if not rows:
            raise DatasetError(f"episode {key} has no decision rows in the training set")
        weight = float(episode["weight"]) if has_weight and episode["weight"] is not None else 1.0
        fallback = [r.get("parse_status") == PARSE_FALLBACK for r in rows]
        if dataset.per == "decision":
            chats, _ = decision_chats(lambda episode=episode: stories(episode), rows, episode.get("explainer"))
            chats = [chat for chat, bad in zip(chats, fallback) if not bad]
            if dataset.relabel:
                names = stories(episode).framing.option_names(stories(episode).n_actions)
                chats = [variant for chat in chats for variant in relabelled_chats(chat, names)]
            examples.extend({"messages": chat, "weight": weight} for chat in chats)
            continue
        chat, _ = episode_chat(lambda episode=episode: stories(episode), rows, episode.get("explainer"))
        if any(fallback):
            chat = _untrain_fallbacks(chat, fallback, key)
        examples.append({"messages": chat, "weight": weight})
    return examples


def _untrain_fallbacks(chat: list[dict[str, Any]], fallback: list[bool], key: tuple) -> list[dict[str, Any]]:
    """Mark the assistant turns of fallback decisions `"train": false` (turn j is decision j)."""
    turns = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
    if len(turns) != len(fallback):
        raise DatasetError(f"episode {key}: {len(turns)} assistant turns for {len(fallback)} decisions, so its "
                           "fallback answers cannot be masked; train per decision instead")
    chat = [dict(m) for m in chat]
    for index, bad in zip(turns, fallback):
        if bad:
            chat[index]["train"] = False
    return chat


def _from_path(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        candidates = [path / "train.jsonl", path / "train.parquet"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DatasetError(f"dataset directory {path} has no train.jsonl or train.parquet")
        path = found
    if not path.is_file():
        raise DatasetError(f"dataset {path} does not exist")
    if path.suffix == ".parquet":
        import polars as pl

        return pl.read_parquet(path).to_dicts()
    if path.suffix != ".jsonl":
        raise DatasetError(f"dataset {path}: expected a .jsonl or .parquet file or a dataset directory")
    rows = []
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return rows


def _check(row: Any, index: int, dataset: Any) -> dict[str, Any]:
    where = f"dataset {_describe(dataset)}, example {index}"
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: expected an object, got {type(row).__name__}")
    if "messages" in row and row["messages"] is not None:
        messages = row["messages"]
    elif "prompt" in row and "completion" in row:
        messages = [*(row["prompt"] or []), *(row["completion"] or [])]
    else:
        raise DatasetError(f"{where}: no 'messages' (nor 'prompt' and 'completion') column")
    if isinstance(messages, str):
        messages = json.loads(messages)
    clean = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DatasetError(f"{where}: every message needs a string 'role' and 'content', got {m!r:.80}")
        message = {"role": m["role"], "content": m["content"]}
        if m.get("train") is not None:
            message["train"] = bool(m["train"])
        clean.append(message)
    if not any(m["role"] == "assistant" and m.get("train", True) for m in clean):
        raise DatasetError(f"{where}: no assistant turn to train on")
    weight = row.get("weight")
    weight = 1.0 if weight is None else float(weight)
    if not math.isfinite(weight) or weight < 0:
        raise DatasetError(f"{where}: weight must be a finite number >= 0, got {row.get('weight')!r}")
    return {"messages": clean, "weight": weight}


def write_openai_jsonl(examples: list[dict[str, Any]], path: Path) -> Path:
    """OpenAI fine-tuning JSONL: `{"messages": [...]}` with system/user/assistant roles only.

    Assistant turns marked `"train": false` keep OpenAI's `weight: 0`; example weights other
    than 1 cannot be expressed there and are refused rather than silently dropped.
    """
    lines = []
    for i, example in enumerate(examples):
        if example["weight"] != 1.0:
            raise DatasetError(f"example {i}: the api backend cannot honour per-example weights "
                               f"(weight {example['weight']:g}); use the hf backend")
        messages = []
        for m in example["messages"]:
            if m["role"] not in ("system", "user", "assistant"):
                raise DatasetError(f"example {i}: role {m['role']!r} is not allowed in OpenAI fine-tuning data")
            out = {"role": m["role"], "content": m["content"]}
            if m["role"] == "assistant" and m.get("train") is False:
                out["weight"] = 0
            messages.append(out)
        lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
