"""Fine-tuning backends: one contract, `fit(base, dataset, config) -> Checkpoint` (see finetune._backend)."""

from finetune._backend import (
    BACKENDS,
    Backend,
    BackendConfig,
    BackendError,
    BaseBackend,
    Checkpoint,
    TrainingSet,
    get_backend,
    list_backends,
    make_config,
    register_backend,
)

__all__ = [
    "BACKENDS", "Backend", "BackendConfig", "BackendError", "BaseBackend", "Checkpoint", "TrainingSet",
    "get_backend", "list_backends", "make_config", "register_backend",
]
