"""How the selector's kept rollouts differ from all rollouts: early commitment, and to which arm.

    .venv/bin/python benchmarks/rmft_commitment.py LOOP_DIR [ITERATION ...]

For every rollout episode of an iteration: the arm played most in rounds 10-29 (`early arm`),
the share of those 20 rounds it got (`early share`), whether it is the best arm, and the
episode's pseudo-regret. A rollout "commits early" when its early share is >= 0.8. Printed
for all rollouts and for the kept ones. The policy cannot know the best arm, so among all
rollouts its early arm is the best one only as often as the evidence allows; among the kept
ones it is the best far more often: selection on final regret keeps the rollouts whose early
choices happened to be right, and imitation then credits those choices.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl


def commitment(folder: Path) -> pl.DataFrame:
    from harness._store import load_run

    decisions, episodes = load_run(folder / "rollouts")
    keys = ["agent", "task_id", "rollout"]
    window = decisions.filter(pl.col("t").is_between(10, 29)).group_by(*keys, "action").agg(
        pulls=pl.len(), best=(pl.col("action") == pl.col("optimal_action")).all())
    early = (window.sort("pulls", "action", descending=[True, False]).group_by(keys, maintain_order=True)
             .agg(early_share=pl.col("pulls").first() / 20, early_best=pl.col("best").first()))
    kept = pl.read_parquet(folder / "dataset" / "episodes.parquet").select(keys).with_columns(kept=pl.lit(True))
    frame = (episodes.select(*keys, "final_regret").join(early, on=keys).collect()
             .join(kept, on=keys, how="left").with_columns(pl.col("kept").fill_null(False)))
    committed = pl.col("early_share") >= 0.8

    def summary(part: pl.DataFrame, label: str) -> dict:
        hit = part.filter(pl.col("early_share") >= 0.8)
        return {"rollouts": label, "n": part.height, "mean_regret": part["final_regret"].mean(),
                "early_share": part["early_share"].mean(), "early_arm_is_best": part["early_best"].mean(),
                "commit_early": part.select(committed.mean()).item(),
                "commit_to_best": hit["early_best"].mean() if hit.height else None}

    return pl.DataFrame([summary(frame, "all"), summary(frame.filter("kept"), "kept")])


def main() -> None:
    loop = Path(sys.argv[1])
    iterations = [int(x) for x in sys.argv[2:]] or sorted(
        int(p.name.split("-")[1]) for p in loop.glob("iter-*") if (p / "dataset").exists())
    rows = [commitment(loop / f"iter-{i:03d}").with_columns(iteration=pl.lit(i)) for i in iterations]
    with pl.Config(tbl_rows=200, float_precision=3, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   tbl_formatting="MARKDOWN"):
        print(pl.concat(rows).select("iteration", pl.exclude("iteration")))


if __name__ == "__main__":
    main()
