"""Paired comparisons of agents: within a run and across runs (`regret compare RUN [RUN...]`).

All agents of a run face identical worlds (common random numbers: an episode's env seed is
the same for every agent), so two agents are compared on the *differences* of their final
regrets over shared episodes — the world's noise cancels — with a task-clustered interval
(`harness._stats.paired_difference`). Episodes are shared when they have the same
(scenario_id, task_id, rollout, env_seed); across runs this holds when both runs come from
the same plan (suite and master seed). Pairs without shared episodes fall back to the
difference of two independent clustered means ("unpaired").

Per scenario the comparison gives every pair of agents (or every agent against a reference)
the mean difference a - b with its interval and a two-sided p-value, raw and Holm-adjusted
over all rows of the comparison; the agents statistically tied for best (the lowest mean, and
every agent whose difference from it is not significant after Holm's correction over the
comparisons with the best in that scenario); and a win-rate matrix (the share of shared
episodes where the row agent's regret is lower, ties counting one half).

With several runs every agent is named "RUN:LABEL"; a warning says when the same label has
other settings in another run, or when the runs come from different plans.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._plan import natural_key as _natural
from harness._stats import Estimate, adjust_pvalues, clustered_mean, difference, paired_difference
from scenarios import UsageError

PAIR_KEYS = ("task_id", "rollout", "env_seed")
ROW_COLUMNS = ("scenario_id", "agent", "versus", "design", "pairs", "tasks", "difference", "ci_low", "ci_high",
               "pvalue", "pvalue_holm", "significant", "method")


@dataclass(frozen=True)
class PairRow:
    """agent - versus on one scenario."""

    scenario_id: str
    agent: str
    versus: str
    design: str  # "paired" (shared episodes) or "unpaired"
    pairs: int  # shared episodes (paired) or episodes of both (unpaired)
    estimate: Estimate
    pvalue: float
    pvalue_holm: float = math.nan
    significant: bool = False

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {"scenario_id": self.scenario_id, "agent": self.agent, "versus": self.versus, "design": self.design,
                "pairs": self.pairs, "tasks": e.n_tasks, "difference": _finite(e.estimate),
                "ci_low": _finite(e.ci_low), "ci_high": _finite(e.ci_high), "pvalue": _finite(self.pvalue),
                "pvalue_holm": _finite(self.pvalue_holm), "significant": self.significant, "method": e.method}


@dataclass(frozen=True)
class ScenarioComparison:
    scenario_id: str
    means: Mapping[str, Estimate]  # per agent: clustered mean final regret
    best: str | None
    tied_for_best: tuple[str, ...]
    win_rate: Mapping[str, Mapping[str, float]]  # win_rate[a][b]: share of shared episodes a beats b


@dataclass(frozen=True)
class Comparison:
    rows: tuple[PairRow, ...]
    scenarios: tuple[ScenarioComparison, ...]
    warnings: tuple[str, ...] = ()
    alpha: float = 0.05
    scope: str = "instances"
    reference: str | None = None
    runs: tuple[str, ...] = field(default=())

    def frame(self):
        import polars as pl

        schema = {"scenario_id": pl.String, "agent": pl.String, "versus": pl.String, "design": pl.String,
                  "pairs": pl.Int64, "tasks": pl.Int64, "difference": pl.Float64, "ci_low": pl.Float64,
                  "ci_high": pl.Float64, "pvalue": pl.Float64, "pvalue_holm": pl.Float64, "significant": pl.Boolean,
                  "method": pl.String}
        return pl.DataFrame([r.to_dict() for r in self.rows], schema=schema, orient="row")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "regret-compare", "version": 1, "runs": list(self.runs), "alpha": self.alpha,
            "scope": self.scope, "reference": self.reference, "warnings": list(self.warnings),
            "rows": [r.to_dict() for r in self.rows],
            "scenarios": [{"scenario_id": s.scenario_id, "best": s.best, "tied_for_best": list(s.tied_for_best),
                           "means": {a: e.to_dict() for a, e in s.means.items()},
                           "win_rate": {a: dict(v) for a, v in s.win_rate.items()}} for s in self.scenarios],
        }

    def table(self) -> str:
        """Fixed-width text: per scenario the tied-for-best group and the pairwise rows."""
        header = ["agent", "versus", "design", "pairs", "tasks", "difference [95% CI]", "p", "p (holm)"]
        lines = []
        for scenario in self.scenarios:
            lines.append(f"{scenario.scenario_id}: tied for best: {', '.join(scenario.tied_for_best) or '-'}")
            body = [header] + [_cells(r) for r in self.rows if r.scenario_id == scenario.scenario_id]
            widths = [max(len(row[i]) for row in body) for i in range(len(header))]
            for k, row in enumerate(body):
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
                if k == 0:
                    lines.append("  " + "  ".join("-" * w for w in widths))
            lines.append("")
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"difference = agent - versus in mean final regret (negative: agent better); two-sided tests, "
                     f"Holm over all {len(self.rows)} rows; {self.scope} scope; alpha {self.alpha:g}")
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = ["# Comparison", ""]
        lines += [f"> warning: {w}" for w in self.warnings]
        for scenario in self.scenarios:
            lines += [f"## {scenario.scenario_id}", "", f"Tied for best: {', '.join(scenario.tied_for_best) or '-'}", "",
                      "| agent | versus | design | pairs | tasks | difference [95% CI] | p | p (holm) |",
                      "|---|---|---|---:|---:|---:|---:|---:|"]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |"
                      for r in self.rows if r.scenario_id == scenario.scenario_id]
            agents = list(scenario.win_rate)
            if agents:
                lines += ["", "Win rate (row beats column on shared episodes):", "",
                          "| | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
                lines += [f"| {a} | " + " | ".join(_rate(scenario.win_rate[a].get(b)) for b in agents) + " |"
                          for a in agents]
            lines.append("")
        return "\n".join(lines)

    def write(self, directory: str | Path) -> dict[str, Path]:
        """comparison.md/.csv/.parquet/.json and comparison_forest.png in `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": directory / "comparison.md", "csv": directory / "comparison.csv",
                 "parquet": directory / "comparison.parquet", "json": directory / "comparison.json",
                 "forest": directory / "comparison_forest.png"}
        paths["markdown"].write_text(self.markdown(), encoding="utf-8")
        frame = self.frame()
        frame.write_csv(paths["csv"])
        frame.write_parquet(paths["parquet"])
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        paths["forest"].write_bytes(self.forest_png())
        return paths

    def forest_png(self) -> bytes:
        """A forest plot: per scenario, each agent's difference from the best (or the reference) with its CI."""
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        panels = []
        for scenario in self.scenarios:
            anchor = self.reference or scenario.best
            rows = [r for r in self.rows if r.scenario_id == scenario.scenario_id and r.versus == anchor]
            panels.append((scenario, anchor, rows))
        n = max(len(panels), 1)
        height = sum(0.6 + 0.28 * max(len(rows), 1) for _, _, rows in panels) + 0.6
        figure = Figure(figsize=(7.5, max(height, 2.0)), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(n, 1, squeeze=False,
                               height_ratios=[max(len(rows), 1) for _, _, rows in panels] or [1])[:, 0]
        for ax, (scenario, anchor, rows) in zip(axes, panels):
            for y, row in enumerate(rows):
                e = row.estimate
                color = "#c0392b" if row.significant else "#34495e"
                if math.isfinite(e.ci_low):
                    ax.plot([e.ci_low, e.ci_high], [y, y], color=color, linewidth=2)
                ax.plot([e.estimate], [y], "o", color=color)
            ax.axvline(0.0, color="#888888", linewidth=1, linestyle="--")
            ax.set_yticks(range(len(rows)), [r.agent for r in rows], fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{scenario.scenario_id}: agent - {anchor} (95% CI; red: Holm-significant)", fontsize=9)
            ax.grid(alpha=0.3, axis="x")
        axes[-1].set_xlabel("difference in mean final regret (negative: better)")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
        return buffer.getvalue()


# --- building a comparison ---------------------------------------------------------------
def compare_episodes(episodes, *, agents: Sequence[str] | None = None, reference: str | None = None,
                     alpha: float = 0.05, level: float = 0.95, scope: str = "instances",
                     warnings: Sequence[str] = (), runs: Sequence[str] = ()) -> Comparison:
    """Compare the agents of an episodes table (polars; columns agent, scenario_id, task_id, rollout,
    env_seed, status, final_regret). `agents` keeps only those; `reference` compares every agent
    with it instead of all pairs."""
    import polars as pl

    frame = episodes.lazy() if isinstance(episodes, pl.DataFrame) else episodes
    frame = (frame.filter(pl.col("status") == "finished")
             .select("agent", "scenario_id", *PAIR_KEYS, "final_regret").collect())
    known = sorted(frame["agent"].unique().to_list())
    if agents:
        missing = [a for a in agents if a not in known]
        if missing:
            raise UsageError(f"unknown agent(s) {', '.join(map(repr, missing))} (agents: {', '.join(known)})")
        frame = frame.filter(pl.col("agent").is_in(list(agents)))
    if reference is not None and reference not in known:
        raise UsageError(f"unknown reference agent {reference!r} (agents: {', '.join(known)})")
    rows: list[PairRow] = []
    scenarios: list[tuple[Any, ...]] = []
    for (scenario_id,), part in sorted(frame.group_by(["scenario_id"]), key=lambda item: _natural(item[0][0])):
        by_agent = {a: p.sort(*PAIR_KEYS) for (a,), p in part.group_by(["agent"])}
        names = sorted(by_agent)
        means = {a: clustered_mean(by_agent[a]["final_regret"].to_numpy(), by_agent[a]["task_id"].to_numpy(),
                                   level=level, scope=scope) for a in names}
        ranked = sorted(names, key=lambda a: (means[a].estimate, a))
        if reference is not None:
            pairs = [(a, reference) for a in ranked if a != reference and reference in by_agent]
        else:
            pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[:i]]  # each worse agent vs each better one
        best = ranked[0] if ranked else None
        win: dict[str, dict[str, float]] = {a: {} for a in ranked}
        for a, b in pairs:
            rows.append(_pair(scenario_id, a, b, by_agent[a], by_agent[b], level, scope))
        # the comparisons with the best, even when they are not rows (a reference was given)
        best_rows = [_pair(scenario_id, a, best, by_agent[a], by_agent[best], level, scope) for a in ranked[1:]]
        for a in ranked:
            for b in ranked:
                if a != b:
                    win[a][b] = _win_rate(by_agent[a], by_agent[b])
        scenarios.append((scenario_id, means, win, best, best_rows))
    holm = adjust_pvalues([r.pvalue for r in rows], "holm")
    rows = [_with_holm(r, p, alpha) for r, p in zip(rows, holm)]
    out = []
    for scenario_id, means, win, best, best_rows in scenarios:
        adjusted = adjust_pvalues([r.pvalue for r in best_rows], "holm")
        tied = [best] + [r.agent for r, p in zip(best_rows, adjusted) if not (p < alpha)] if best else []
        out.append(ScenarioComparison(scenario_id, means, best, tuple(tied), win))
    return Comparison(tuple(rows), tuple(out), tuple(warnings), alpha, scope, reference, tuple(runs))


def compare_runs(run_dirs: Sequence[str | Path], **options: Any) -> Comparison:
    """Compare the agents of one run, or of several runs (agents named RUN:LABEL), see the module docstring."""
    import polars as pl

    from harness._check import fingerprint_warnings, plan_fingerprint
    from harness._files import read_plan
    from harness._store import load_run

    if not run_dirs:
        raise UsageError("compare needs at least one run directory")
    frames, plans, names = [], [], []
    for directory in map(Path, run_dirs):
        if not (directory / "store.sqlite").exists():
            raise UsageError(f"{directory} is not a run directory (no store.sqlite)")
        _, episodes = load_run(directory)
        try:
            plan = read_plan(directory)
        except (OSError, ValueError, KeyError):
            plan = {}
        name = directory.name
        while name in names:
            name += "'"
        names.append(name)
        plans.append(plan)
        frame = episodes.collect()
        if len(run_dirs) > 1:
            frame = frame.with_columns(agent=pl.lit(f"{name}:") + pl.col("agent"))
        frames.append(frame)
    sources = [(name, {"plan_seed": plan.get("seed"), **plan_fingerprint(plan)}) for name, plan in zip(names, plans)]
    warnings = fingerprint_warnings(sources) if len(run_dirs) > 1 else []
    episodes = pl.concat(frames, how="diagonal_relaxed")
    return compare_episodes(episodes, warnings=warnings, runs=names, **options)


# --- internals ---------------------------------------------------------------------------
def _pair(scenario_id: str, a: str, b: str, left, right, level: float, scope: str) -> PairRow:
    joined = left.join(right, on=list(PAIR_KEYS), how="inner", suffix="_b")
    if joined.height >= 2:
        estimate = paired_difference(joined["final_regret"].to_numpy(), joined["final_regret_b"].to_numpy(),
                                     joined["task_id"].to_numpy(), level=level, scope=scope)
        return PairRow(scenario_id, a, b, "paired", joined.height, estimate, estimate.pvalue())
    estimate = difference(
        clustered_mean(left["final_regret"].to_numpy(), left["task_id"].to_numpy(), level=level, scope=scope),
        clustered_mean(right["final_regret"].to_numpy(), right["task_id"].to_numpy(), level=level, scope=scope))
    return PairRow(scenario_id, a, b, "unpaired", left.height + right.height, estimate, estimate.pvalue())


def _with_holm(row: PairRow, adjusted: float, alpha: float) -> PairRow:
    from dataclasses import replace

    return replace(row, pvalue_holm=adjusted, significant=bool(adjusted < alpha))


def _win_rate(left, right) -> float:
    joined = left.join(right, on=list(PAIR_KEYS), how="inner", suffix="_b")
    if joined.is_empty():
        return math.nan
    a, b = joined["final_regret"].to_numpy(), joined["final_regret_b"].to_numpy()
    return float(((a < b).sum() + 0.5 * (a == b).sum()) / joined.height)


def _cells(row: PairRow) -> list[str]:
    e = row.estimate
    interval = "–" if not math.isfinite(e.ci_low) else f"[{e.ci_low:+.3f}, {e.ci_high:+.3f}]"
    star = " *" if row.significant else ""
    single = " †" if e.single_task else ""
    return [row.agent, row.versus, row.design, str(row.pairs), str(e.n_tasks),
            f"{e.estimate:+.3f} {interval}{single}", _p(row.pvalue), _p(row.pvalue_holm) + star]


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def _rate(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def power_table(run_dirs: Sequence[str | Path], reference: str, relative_effect: float, *, alpha: float = 0.05,
                power: float = 0.8, scope: str = "instances", agents: Sequence[str] | None = None) -> str:
    """Per scenario and agent: tasks and episodes needed against `reference`, paired beside unpaired."""
    import polars as pl

    from harness._stats import plan_power
    from harness._store import load_run

    frames = []
    for directory in map(Path, run_dirs):
        frame = load_run(directory)[1].collect()
        if len(run_dirs) > 1:
            frame = frame.with_columns(agent=pl.lit(f"{directory.name}:") + pl.col("agent"))
        frames.append(frame)
    episodes = pl.concat(frames, how="diagonal_relaxed").filter(pl.col("status") == "finished")
    lines = [f"power plan ({scope} scope): episodes per agent for {power:.0%} power to detect a {relative_effect:.0%} "
             f"difference from {reference} at alpha {alpha:g} (two-sided)",
             f"  {'scenario':<28} {'agent':<24} {'paired tasks':>12} {'paired episodes':>15} {'unpaired tasks':>14} "
             f"{'unpaired episodes':>17}"]
    base = episodes.filter(pl.col("agent") == reference).select("scenario_id", *PAIR_KEYS, b=pl.col("final_regret"))
    for agent in sorted(set(episodes["agent"].to_list()) - {reference}):
        if agents and agent not in agents:
            continue
        mine = episodes.filter(pl.col("agent") == agent).select("scenario_id", *PAIR_KEYS, a=pl.col("final_regret"))
        joined = mine.join(base, on=["scenario_id", *PAIR_KEYS], how="inner")
        for (scenario_id,), part in sorted(joined.group_by(["scenario_id"]), key=lambda i: _natural(i[0][0])):
            if part.height < 2:
                continue
            plan = plan_power(part["a"].to_numpy(), part["b"].to_numpy(), part["task_id"].to_numpy(),
                              relative_effect=relative_effect, alpha=alpha, power=power, scope=scope)
            show = lambda v: "-" if v is None else str(v)  # noqa: E731
            lines.append(f"  {scenario_id:<28} {agent:<24} {show(plan.paired_tasks):>12} "
                         f"{show(plan.paired_episodes):>15} {show(plan.unpaired_tasks):>14} "
                         f"{show(plan.unpaired_episodes):>17}")
    return "\n".join(lines)
