"""The fine-tuning backend contract: `fit(base, dataset, config) -> Checkpoint`, and its registry.

How the RMFT loop (`finetune._loop`) uses a backend, per iteration::

    backend = get_backend("torch")                       # lazy: imports the module only now
    config = make_config(backend, {"epochs": 3}, output_dir=".../iter-001/checkpoint")
    with backend.serve(current) as agent_spec:           # an AgentSpec the harness can run
        run rollouts / evaluation of `agent_spec` through harness.run_plan
    training_set = TrainingSet(...)                      # the k lowest-regret trajectories per task
    current = backend.fit(base, training_set, config)    # -> Checkpoint

Writing a backend (the text backends `hf`, `unsloth`, `api` live in
`finetune/backends/<name>.py` and are registered lazily below by "module:attribute"):

- subclass `BaseBackend` (or satisfy the `Backend` protocol): a `name`, a `Config` dataclass
  subclassing `BackendConfig` (TRL-like fields with `metadata={"help": ...}`), and
  `fit(base, dataset, config) -> Checkpoint`;
- `base` is a string: at the first fit of a loop, the loop's `--base-model` (defaults to the
  `--agent` string); afterwards the previous `Checkpoint.path` (RMFT keeps fine-tuning the
  current model);
- `dataset` is a `TrainingSet`: the kept episodes (with a `weight` column, 1.0 unless the
  selector weights examples) and their decision rows, as polars DataFrames in the run store's
  columns (`harness._store.DECISION_COLUMNS`: `messages`, `reasoning`, `raw_output` for text
  models; `action`, `reward`, `feedback` for numeric ones), plus a scratch `directory`. A text
  backend renders it into chat `messages` itself (e.g. with the dataset module). Backends may
  also accept a path to a dataset file for standalone use;
- write everything under `config.output_dir` and return a `Checkpoint` whose `agent` (and
  `params`) is what `agents.resolve` needs to play it, and whose `metrics` hold at least
  `train_loss` (the last epoch's mean loss; NaN if unknown) and `examples`;
- `serving(workdir, first)` is a context manager yielding a `Serving`: `spec(checkpoint)` gives
  the `AgentSpec` that plays a checkpoint. The loop opens it once and plays every checkpoint
  through it, so a backend whose checkpoints are local weights starts ONE OpenAI-compatible
  server on 127.0.0.1 (`transformers serve`, llama.cpp, vLLM) for the whole loop and stops it
  on exit. The default plays `checkpoint.agent_spec()` (enough for `torch:PATH` or a hosted
  fine-tune). `serve(checkpoint)` is the one-checkpoint shorthand;
- `initial_checkpoint(agent, params, base_model, output_dir, plan=None)` says what iteration 0
  plays (`plan` is the training suite's harness Plan, so a backend can size a new model); the
  default wraps the `--agent` string and its settings unchanged.

Third-party backends register with `register_backend(name, "package.module:Class")` or
through the `regret_harness.backends` entry-point group (`name = "package.module:Class"`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from agents import AgentSpec
from harness import atomic_write_json
from scenarios import ConfigError, Registry, unknown_key_message

if TYPE_CHECKING:
    import polars as pl

CHECKPOINT_FILE = "checkpoint.json"


class BackendError(ConfigError):
    """A backend that cannot be used as asked (unknown name, missing package, bad config)."""


@dataclass
class BackendConfig:
    """Settings every backend has; each backend's `Config` subclasses this."""

    output_dir: str = field(default="checkpoint", metadata={"help": "directory the checkpoint is written to"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice in training"})


@dataclass(frozen=True)
class Checkpoint:
    """A trained (or initial) model: where it is, how to play it, how training went."""

    path: str  # a directory (local weights), or a provider's model id for hosted fine-tunes
    agent: str  # what agents.resolve plays: "torch:PATH", "openai/ft:...", "hosted_vllm/NAME"
    backend: str
    params: Mapping[str, Any] = field(default_factory=dict)  # agent settings (api_base, play, ...)
    metrics: Mapping[str, float] = field(default_factory=dict)  # train_loss, examples, ...

    def agent_spec(self, label: str = "") -> AgentSpec:
        return AgentSpec(self.agent, dict(self.params), label)

    def to_dict(self) -> dict[str, Any]:
        metrics = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.metrics.items()}
        return {"path": self.path, "agent": self.agent, "backend": self.backend,
                "params": dict(self.params), "metrics": metrics}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        metrics = {k: (math.nan if v is None else v) for k, v in dict(data.get("metrics", {})).items()}
        return cls(str(data["path"]), str(data["agent"]), str(data["backend"]), dict(data.get("params", {})), metrics)

    def save(self, directory: str | Path) -> Path:
        """Write checkpoint.json into `directory` (the loop's record of this checkpoint)."""
        path = Path(directory) / CHECKPOINT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_json(path, self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def load(cls, directory: str | Path) -> Checkpoint:
        path = Path(directory) / CHECKPOINT_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise BackendError(f"{directory} holds no checkpoint ({CHECKPOINT_FILE} missing)") from None


@dataclass
class TrainingSet:
    """What a backend trains on: the selected trajectories of one iteration.

    `episodes` has the run store's episode columns plus `weight` (Float64); `decisions` has
    the decision columns of exactly those episodes, sorted by (agent, task_id, rollout, t).
    """

    episodes: pl.DataFrame
    decisions: pl.DataFrame
    directory: Path  # scratch space for rendered datasets
    run_dirs: tuple[Path, ...] = ()
    selector: str = ""
    per: str = "episode"  # one chat example per kept 'episode', or per 'decision' (exactly the prompt seen)
    relabel: bool = False  # per decision: also every cyclic relabelling of a summary prompt's options

    def __len__(self) -> int:
        return self.episodes.height


@runtime_checkable
class Backend(Protocol):
    name: str
    Config: type[BackendConfig]

    def fit(self, base: str, dataset: TrainingSet, config: BackendConfig) -> Checkpoint: ...

    def serve(self, checkpoint: Checkpoint) -> contextlib.AbstractContextManager[AgentSpec]: ...

    def serving(self, workdir: str | Path, first: Checkpoint) -> contextlib.AbstractContextManager[Serving]: ...

    def initial_checkpoint(self, agent: str, params: Mapping[str, Any], base_model: str | None,
                           output_dir: str | Path, plan: Any = None) -> Checkpoint: ...


class Serving:
    """Plays checkpoints for the duration of a loop; the default plays each as its agent spec says."""

    def spec(self, checkpoint: Checkpoint) -> AgentSpec:
        return checkpoint.agent_spec()

    def cpu_s(self) -> float:
        """CPU seconds the serving processes have used so far (0 when nothing runs apart)."""
        return 0.0

    def problem(self) -> str | None:
        """Why serving failed since the last call (a model server that died), or None."""
        return None


class BaseBackend:
    """Defaults for `serving`, `serve` and `initial_checkpoint`; subclasses set `name`, `Config`, `fit`."""

    name: ClassVar[str] = "backend"
    Config: ClassVar[type[BackendConfig]] = BackendConfig

    def fit(self, base: str, dataset: TrainingSet, config: BackendConfig) -> Checkpoint:
        raise NotImplementedError

    @contextlib.contextmanager
    def serving(self, workdir: str | Path, first: Checkpoint) -> Iterator[Serving]:
        yield Serving()

    @contextlib.contextmanager
    def serve(self, checkpoint: Checkpoint) -> Iterator[AgentSpec]:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="regret-serve-") as workdir:
            with self.serving(workdir, checkpoint) as serving:
                yield serving.spec(checkpoint)

    def initial_checkpoint(self, agent: str, params: Mapping[str, Any], base_model: str | None,
                           output_dir: str | Path, plan: Any = None) -> Checkpoint:
        return Checkpoint(base_model or agent, agent, self.name, dict(params))


# built-ins are registered by "module:attribute" and imported on first use (heavy imports stay lazy)
BACKENDS: Registry[Any] = Registry("backend", "regret_harness.backends", instantiate=True)
BACKENDS.lazy("torch", "finetune.backends.torch_backend:TorchBackend", help="numeric torch policies (CPU)")
BACKENDS.lazy("hf", "finetune.backends.hf:HFBackend", help="transformers + peft LoRA on CPU or GPU")
BACKENDS.lazy("unsloth", "finetune.backends.unsloth:UnslothBackend", help="unsloth LoRA (NVIDIA GPU only)")
BACKENDS.lazy("api", "finetune.backends.api:APIBackend", help="a provider's fine-tuning API (OpenAI-compatible)")


def register_backend(name: str, target: Any, *, help: str = "") -> None:
    """Register a backend object, class, or a lazy "module:attribute" string under `name`."""
    if isinstance(target, str):
        BACKENDS.lazy(name, target, help=help, source="")
    else:
        BACKENDS.add(name, target, help=help or None)


def list_backends() -> list[str]:
    return BACKENDS.names()


def get_backend(name: str) -> Backend:
    """The backend registered as `name`, importing its module now (heavy imports stay lazy)."""
    try:
        return BACKENDS.get(name)
    except ModuleNotFoundError as exc:
        raise BackendError(f"backend {name!r} needs the package {exc.name!r}; install it "
                           f"(e.g. pip install 'regret-harness[finetune]')") from None


def make_config(backend: Backend, values: Mapping[str, Any] | None = None, **overrides: Any) -> BackendConfig:
    """Build `backend.Config` from a mapping, naming unknown keys clearly."""
    values = {**dict(values or {}), **overrides}
    known = {f.name for f in dataclasses.fields(backend.Config)}
    for key in values:
        if key not in known:
            raise BackendError(unknown_key_message(f"backend {backend.name!r}", key, known))
    return backend.Config(**values)
