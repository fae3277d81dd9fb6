"""The Iterative RMFT loop (public face of finetune._loop): `iterate(IterateConfig(...))`."""

from finetune._loop import (
    IterateConfig,
    IterateResult,
    check_disjoint,
    heldout_entries,
    iterate,
    plot_iterations,
    training_entries,
    write_table,
)

__all__ = [
    "IterateConfig", "IterateResult", "check_disjoint", "heldout_entries", "iterate", "plot_iterations",
    "training_entries", "write_table",
]
