"""The Iterative RMFT loop (public face of finetune._loop): `iterate(IterateConfig(...))`.

The steps are public too, each a function `step(loop, state, i) -> StepRecord` over the loop's
run-scoped parts (`Loop`, from `prepare`; `serving` opens the model server) and its typed,
resumable `LoopState` (state.json): `evaluate`, `rollout`, `select`, `fit` (in `STEPS`), and
`baselines` once. `iterate` runs each one that state.json does not record as done.
"""

from finetune._loop import (
    STEPS,
    IterateConfig,
    IterateResult,
    Loop,
    LoopError,
    LoopState,
    StepRecord,
    baselines,
    check_disjoint,
    evaluate,
    fit,
    heldout_entries,
    iterate,
    plot_iterations,
    prepare,
    rollout,
    select,
    select_trajectories,
    serving,
    start_model,
    training_entries,
    training_tasks,
    write_table,
)

__all__ = [
    "IterateConfig", "IterateResult", "Loop", "LoopError", "LoopState", "STEPS", "StepRecord", "baselines",
    "check_disjoint", "evaluate", "fit", "heldout_entries", "iterate", "plot_iterations", "prepare", "rollout",
    "select", "select_trajectories", "serving", "start_model", "training_entries", "training_tasks", "write_table",
]
