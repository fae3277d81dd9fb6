"""Reports of a run: the leaderboard in the terminal, and Markdown, CSV, Parquet, PNG and HTML files.

`write_report(run_dir)` writes into the run directory:

- leaderboard.md, leaderboard.csv, leaderboard.parquet: the leaderboard of `harness.metrics`
  (no timestamps, no directory names, sorted rows, floats rounded to 6 decimals), so two runs
  of the same plan give byte-identical files;
- regret_curves.png: mean cumulative regret per agent with a shaded 95% band, one subplot per
  scenario (Agg canvas, fixed size and dpi, no "Software" metadata: deterministic bytes);
- report.html: one self-contained page (inline CSS, the plot as a data URI, no scripts) with
  the plan, the leaderboard, the plot and an episode browser. Everything taken from the run
  (model output above all) is HTML-escaped, and long texts are clipped with a note, so the
  page stays bounded.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents import VALID_PARSE_STATUSES
from harness import metrics
from harness._files import atomic_write_bytes, read_frozen_plan, read_plan
from scenarios import ConfigError

if TYPE_CHECKING:
    import polars as pl
    from rich.console import Console

REPORT_FILES = {
    "markdown": "leaderboard.md",
    "csv": "leaderboard.csv",
    "parquet": "leaderboard.parquet",
    "plot": "regret_curves.png",
    "html": "report.html",
}
EPISODES_PER_GROUP = 3  # episodes shown per (agent, scenario) in the episode browser
MAX_ROUNDS = 100  # rounds shown per episode (the first and last halves)
MAX_HTML_BYTES = 1_500_000  # the episode browser stops rendering episodes beyond this (the page stays a few MB)
TEXT_LIMITS = {"prompt": 1500, "messages": 6000, "reasoning": 3000, "raw": 2000, "info": 1000, "error": 2000}
PLOT_DPI = 100


# --- formatting --------------------------------------------------------------------------
_num = metrics.format_number
_pvalue = metrics.format_pvalue
_percent = metrics.format_percent


SINGLE_TASK_NOTE = ("† one task: the interval is over the episodes of that single instance and says nothing "
                    "about other instances of the scenario.")
LEADERBOARD_NOTE = (
    "Mean final regret over finished episodes with a task-clustered 95% interval (cluster-robust over tasks, "
    "Student t with tasks - 1 degrees of freedom: few tasks give wide intervals). beta: the regret-growth slope "
    "log R_t = beta log t + c fitted per episode (first 10% of rounds skipped) and averaged, with its clustered "
    "95% interval; sublinear: the one-sided test of beta >= 1 rejects at 0.05. SuffFail: share of episodes never "
    "playing the best arm in the second half. MinFrac: K times the smallest share of pulls any arm got.")


def _table_cells(frame: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    columns = metrics.table_columns()
    headers = [name for name, _ in columns]
    return headers, [[cell(row) for _, cell in columns] for row in frame.iter_rows(named=True)]


def leaderboard_markdown(frame: pl.DataFrame) -> str:
    """The leaderboard as a Markdown table (pipes in names escaped)."""
    headers, rows = _table_cells(frame)
    lines = [
        "# Leaderboard",
        "",
        LEADERBOARD_NOTE,
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    if any(row.get("ci_method") == "single task" for row in frame.iter_rows(named=True)):
        lines += ["", SINGLE_TASK_NOTE]
    return "\n".join(lines) + "\n"


def print_leaderboard(frame: pl.DataFrame, console: Console | None = None) -> None:
    """Print the leaderboard as a rich table: a heading row per scenario, then its agents by mean regret.

    The 95% interval is shown as mean ± half-width (the Student-t interval is symmetric).
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or logged: 80 columns would wrap every cell
            console = Console(width=160)
    table = Table(title="Leaderboard: final regret (lower is better)", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    longest = max((len(a) for a in frame["agent"].to_list()), default=5)
    table.add_column("agent", no_wrap=True, min_width=min(longest + 2, 30), max_width=40)
    for name in ("tasks", "episodes", "mean regret ± 95% CI", "beta [95% CI]", "sublinear", "SuffFail", "MinFrac",
                 "invalid", "cost $"):
        table.add_column(name, justify="right")
    previous = None
    for row in frame.iter_rows(named=True):  # in the frame's order (report_run: the plan's scenario order)
        scenario = row["scenario_id"]
        if scenario != previous:
            if previous is not None:
                table.add_section()
            table.add_row(Text(scenario, style="bold cyan", overflow="fold"))
            previous = scenario
        n = str(row["episodes"]) + (f" (+{row['failed']} failed)" if row["failed"] else "")
        mean = _num(row["mean_regret"])
        if row["ci_low"] is not None:
            mean += f" ± {(row['ci_high'] - row['ci_low']) / 2:.3f}" + (" †" if row["ci_method"] == "single task" else "")
        beta = "–" if row["beta"] is None else f"{row['beta']:.2f}"
        if row["beta_ci_low"] is not None:
            beta += f" [{row['beta_ci_low']:.2f}, {row['beta_ci_high']:.2f}]"
        cost = row["cost"] or 0.0
        table.add_row(
            "  " + row["agent"], str(row["tasks"]), n, mean, beta, metrics._sublinear(row), _num(row["suff_fail_freq"], ".2f"),
            _num(row["min_frac"], ".2f"),
            _percent(row["invalid_rate"]), "0" if cost == 0 else f"{cost:.4f}",
        )
    console.print(table)
    if any(row["ci_method"] == "single task" for row in frame.iter_rows(named=True)):
        console.print(SINGLE_TASK_NOTE)


# --- the plots ---------------------------------------------------------------------------
_LINE_STYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)))


def agent_styles(agents: list[str]) -> dict[str, tuple[Any, Any]]:
    """(colour, line style) per agent: 20 distinct colours (tab20, dark shades first), and a line
    style that also changes with every agent, so no two of up to 20 agents look alike."""
    import matplotlib

    palette = matplotlib.colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # the ten dark colours, then their light partners
    return {a: (palette(order[i % 20]), _LINE_STYLES[i % len(_LINE_STYLES)]) for i, a in enumerate(agents)}


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_scenario_curves(curves: pl.DataFrame, agents: list[str], change_points: list[int] | None = None) -> bytes:
    """One scenario's mean cumulative regret with its clustered band: linear and log-log panels.

    `change_points` (0-based rounds where the best arm changes in the scenario's first task) are
    drawn as dotted vertical lines. The log-log panel's slope is beta (a straight line of slope 1
    is linear regret; it is drawn for reference through the first agent's last point).
    """
    import polars as pl

    styles = agent_styles(agents)
    figure = _figure(11.0, 3.6 + 0.22 * math.ceil(len(agents) / 5))
    linear, loglog = figure.subplots(1, 2)
    handles = {}
    for agent in agents:
        part = curves.filter(pl.col("agent") == agent).sort("t")
        if part.is_empty():
            continue
        x = part["t"].to_numpy() + 1
        color, style = styles[agent]
        mean = part["mean"].to_numpy()
        (line,) = linear.plot(x, mean, color=color, linestyle=style, linewidth=1.4, label=agent)
        low = part["low"].cast(float).fill_null(float("nan")).to_numpy()
        high = part["high"].cast(float).fill_null(float("nan")).to_numpy()
        linear.fill_between(x, low, high, color=color, alpha=0.12, linewidth=0)
        positive = mean > 1e-9
        if positive.any():
            loglog.plot(x[positive], mean[positive], color=color, linestyle=style, linewidth=1.4)
        handles[agent] = line
    for t in change_points or []:
        for ax in (linear, loglog):
            ax.axvline(t + 1, color="#555555", linestyle=":", linewidth=1)
    linear.set(xlabel="round", ylabel="cumulative regret", title="linear (band: task-clustered 95%)")
    loglog.set(xlabel="round (log)", ylabel="cumulative regret (log)", xscale="log", yscale="log",
               title="log-log (slope = beta; grey: slope 1)" + ("; dotted: change points" if change_points else ""))
    lines = loglog.get_lines()
    if lines:
        x_end, y_end = lines[0].get_xdata()[-1], lines[0].get_ydata()[-1]
        loglog.plot([1, x_end], [y_end / x_end, y_end], color="#aaaaaa", linewidth=1, linestyle="--")
    for ax in (linear, loglog):
        ax.grid(alpha=0.3)
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(5, len(handles)),
                      fontsize=8, frameon=False)
    return _png(figure)


def plot_actions(decisions: pl.DataFrame, agents: list[str], bins: int = 10) -> bytes | None:
    """Pulls per arm over time for one task, one small panel per agent (stacked shares per time bin).

    The black line is the share of pulls on the round's best arm (`optimal_action`), so the best
    arm is marked even when it moves. Returns None when the decisions carry no discrete actions.
    """
    import polars as pl

    import numpy as np

    rows = decisions.filter(pl.col("action").is_not_null())
    if rows.is_empty():
        return None
    k = int(max(rows["action"].max(), rows["optimal_action"].max() or 0)) + 1
    horizon = int(rows["t"].max()) + 1
    shown = [a for a in agents if a in set(rows["agent"].unique().to_list())]
    cols = min(4, len(shown))
    nrows = math.ceil(len(shown) / cols)
    figure = _figure(3.0 * cols, 2.1 * nrows + 0.5)
    axes = figure.subplots(nrows, cols, squeeze=False)
    palette = __import__("matplotlib").colormaps["tab20" if k > 10 else "tab10"]
    edges = np.linspace(0, horizon, bins + 1)
    for ax, agent in zip(axes.flat, shown):
        part = rows.filter(pl.col("agent") == agent)
        t, action = part["t"].to_numpy(), part["action"].to_numpy()
        hit = action == part["optimal_action"].to_numpy()
        which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, bins - 1)
        counts = np.zeros((bins, k))
        np.add.at(counts, (which, action), 1)
        totals = np.maximum(counts.sum(axis=1, keepdims=True), 1)
        shares = counts / totals
        centers = (edges[:-1] + edges[1:]) / 2
        width = horizon / bins * 0.9
        bottom = np.zeros(bins)
        for arm in range(k):
            ax.bar(centers, shares[:, arm], width, bottom=bottom, color=palette(arm % palette.N), linewidth=0,
                   label=f"arm {arm}")
            bottom += shares[:, arm]
        best = np.bincount(which, weights=hit, minlength=bins) / np.maximum(np.bincount(which, minlength=bins), 1)
        ax.plot(centers, best, color="black", marker="o", markersize=3, linewidth=1.2)
        ax.set_title(agent, fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(10, k), fontsize=7, frameon=False)
    figure.suptitle("share of pulls per arm per tenth of the episode (black: share on the round's best arm)",
                    fontsize=9)
    return _png(figure)


def plot_sweep(board: pl.DataFrame, swept: list[tuple[str, dict[str, Any]]], agents: list[str]) -> bytes | None:
    """Mean final regret (clustered 95% CI) against a swept parameter, one line per agent."""
    import polars as pl

    if not swept or len(swept[0][1]) != 1:
        return None
    (name,) = swept[0][1]
    values = [v[name] for _, v in swept]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    styles = agent_styles(agents)
    figure = _figure(6.5, 3.8)
    ax = figure.subplots()
    for agent in agents:
        xs, ys, lows, highs = [], [], [], []
        for (scenario_id, _), value in zip(swept, values):
            part = board.filter((pl.col("agent") == agent) & (pl.col("scenario_id") == scenario_id))
            if part.is_empty() or part["mean_regret"][0] is None:
                continue
            row = part.row(0, named=True)
            xs.append(value)
            ys.append(row["mean_regret"])
            lows.append(row["mean_regret"] - (row["ci_low"] if row["ci_low"] is not None else row["mean_regret"]))
            highs.append((row["ci_high"] if row["ci_high"] is not None else row["mean_regret"]) - row["mean_regret"])
        if xs:
            color, style = styles[agent]
            ax.errorbar(xs, ys, yerr=[lows, highs], color=color, linestyle=style, marker="o", markersize=3,
                        capsize=2, linewidth=1.2, label=agent)
    ax.set(xlabel=name, ylabel="mean final regret", title=f"final regret against {name} (95% clustered CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2, frameon=False)
    return _png(figure)


# --- the overview plot -------------------------------------------------------------------
def plot_regret_curves(curves: pl.DataFrame, path: str | Path, scenarios: list[str] | None = None,
                       agents: list[str] | None = None) -> Path:
    """Write the regret-curve PNG (one subplot per scenario, in plan order when given; deterministic bytes).

    Draws on an Agg canvas created here, without pyplot, so no global backend is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    present = set(curves["scenario_id"].unique().to_list())
    scenarios = [x for x in scenarios or [] if x in present] + sorted(present - set(scenarios or []))
    seen = set(curves["agent"].unique().to_list())
    agents = [a for a in agents or [] if a in seen] + sorted(seen - set(agents or []))
    n = max(len(scenarios), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    figure = Figure(figsize=(5.0 * ncols, 3.4 * nrows + 0.4 + 0.25 * math.ceil(len(agents) / 6)),
                    dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    colors = agent_styles(agents)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    handles: dict[str, Any] = {}
    for index, ax in enumerate(axes.flat):
        if index >= len(scenarios):
            ax.set_visible(False)
            continue
        scenario = scenarios[index]
        for agent in agents:
            part = curves.filter((curves["scenario_id"] == scenario) & (curves["agent"] == agent)).sort("t")
            if part.is_empty():
                continue
            x = part["t"].to_numpy() + 1
            color, style = colors[agent]
            (line,) = ax.plot(x, part["mean"].to_numpy(), color=color, linestyle=style, linewidth=1.4, label=agent)
            low = part["low"].cast(float).fill_null(float("nan")).to_numpy()
            high = part["high"].cast(float).fill_null(float("nan")).to_numpy()
            ax.fill_between(x, low, high, color=color, alpha=0.15, linewidth=0)
            handles.setdefault(agent, line)
        ax.set_title(scenario, fontsize=10)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative regret")
        ax.grid(alpha=0.3)
    if not scenarios:
        axes.flat[0].set_visible(True)
        axes.flat[0].text(0.5, 0.5, "no finished episodes", ha="center", va="center")
    if handles:
        figure.legend([handles[a] for a in agents if a in handles], [a for a in agents if a in handles],
                      loc="outside lower center", ncols=min(6, len(handles)), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return path


# --- the HTML page -----------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 1.5rem; color: #1b1b1b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.45rem; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { white-space: pre-wrap; word-break: break-word; max-width: 32rem;
          font-family: ui-monospace, monospace; font-size: 0.78rem; }
tr.bad td { background: #fff1f0; }
details { margin: 0.3rem 0; } summary { cursor: pointer; }
details.group > summary { font-weight: 600; }
.note { color: #777; font-style: italic; }
.meta { color: #555; font-size: 0.85rem; }
img#regret-plot, img.plot { max-width: 100%; height: auto; border: 1px solid #eee; display: block; margin: 0.4rem 0; }
div.scroll { max-width: 100%; overflow-x: auto; }
nav#nav { position: sticky; top: 0; background: #fafafa; border-bottom: 1px solid #ddd; padding: 0.4rem;
          font-size: 0.85rem; z-index: 2; }
th[title] { cursor: pointer; } th[data-order="asc"]::after { content: " ▲"; } th[data-order="desc"]::after { content: " ▼"; }
h3 { font-size: 1rem; }
section { scroll-margin-top: 4.5rem; }
pre { white-space: pre-wrap; word-break: break-word; font-size: 0.78rem; margin: 0.2rem 0; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _clip(text: Any, limit: int) -> str:
    """Escape `text`, keeping its head and tail when longer than `limit` characters."""
    if text is None:
        return ""
    text = str(text)
    if len(text) <= limit:
        return _e(text)
    head = int(limit * 0.4)
    tail = limit - head
    omitted = len(text) - head - tail
    return f'{_e(text[:head])}<span class="note">[… {omitted} characters omitted …]</span>{_e(text[-tail:])}'


def _json_or_none(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _message_text(message: Any) -> str:
    if not isinstance(message, Mapping):
        return str(message)
    content = message.get("content")
    if isinstance(content, list):  # multi-part content: keep the text parts
        content = "\n".join(str(p.get("text", p)) if isinstance(p, Mapping) else str(p) for p in content)
    return "" if content is None else str(content)


def _prompt_cell(messages_json: Any) -> str:
    messages = _json_or_none(messages_json)
    if not isinstance(messages, list) or not messages:
        return ""
    last_user = next((m for m in reversed(messages) if isinstance(m, Mapping) and m.get("role") == "user"), None)
    shown = _clip(_message_text(last_user), TEXT_LIMITS["prompt"]) if last_user is not None else ""
    full = "\n\n".join(f"[{m.get('role', '?') if isinstance(m, Mapping) else '?'}]\n{_message_text(m)}"
                       for m in messages)
    return (f"{shown}<details><summary>all {len(messages)} messages</summary>"
            f"<pre>{_clip(full, TEXT_LIMITS['messages'])}</pre></details>")


def _played(row: Mapping[str, Any]) -> str:
    if row["action"] is not None:
        return str(row["action"])
    policy = _json_or_none(row["policy"])
    if isinstance(policy, list):
        try:
            return "[" + ", ".join(f"{float(p):.3f}" for p in policy) + "]"
        except (TypeError, ValueError):
            pass
    return _e(row["policy"])


def _round_row(row: Mapping[str, Any]) -> str:
    reasoning = _clip(row["reasoning"], TEXT_LIMITS["reasoning"])
    if row.get("info"):
        info = _clip(row["info"], TEXT_LIMITS["info"])
        reasoning += f"<details><summary>agent internals</summary><pre>{info}</pre></details>"
    status = row["parse_status"]
    bad = ' class="bad"' if status not in VALID_PARSE_STATUSES else ""
    return (
        f"<tr{bad}><td class=\"num\">{row['t']}</td><td class=\"text\">{_prompt_cell(row['messages'])}</td>"
        f"<td class=\"text\">{reasoning}</td><td class=\"text\">{_clip(row['raw_output'], TEXT_LIMITS['raw'])}</td>"
        f"<td class=\"num\">{_played(row)}</td><td class=\"num\">{_num(row['reward'], '.4g')}</td>"
        f"<td class=\"num\">{_num(row['regret'], '.4g')}</td>"
        f"<td class=\"num\">{_num(row['cumulative_regret'], '.4g')}</td>"
        f"<td>{_e(status)}</td></tr>"
    )


_ROUND_HEADER = ("<tr><th>t</th><th>prompt (last user message)</th><th>reasoning</th><th>raw output</th>"
                 "<th>action / policy</th><th>reward</th><th>regret</th><th>cum. regret</th><th>parse</th></tr>")


def _episode_table(rows: list[dict[str, Any]], max_rounds: int) -> str:
    parts = [f"<table>{_ROUND_HEADER}"]
    if len(rows) > max_rounds:
        head = max_rounds - max_rounds // 2
        tail = max_rounds // 2
        parts += [_round_row(r) for r in rows[:head]]
        hidden = len(rows) - head - tail
        parts.append(f'<tr><td colspan="9" class="note">… {hidden} rounds not shown (rounds {rows[head]["t"]}–'
                     f'{rows[head + hidden - 1]["t"]}); the full episode is in decisions.parquet …</td></tr>')
        parts += [_round_row(r) for r in rows[len(rows) - tail:]]
    else:
        parts += [_round_row(r) for r in rows]
    parts.append("</table>")
    return "".join(parts)


def _pick(n: int, cap: int) -> list[int]:
    """Indices of `cap` episodes spread evenly over `n` sorted by regret (lowest, ..., highest)."""
    if n <= cap:
        return list(range(n))
    if cap == 1:
        return [(n - 1) // 2]
    return sorted({round(i * (n - 1) / (cap - 1)) for i in range(cap)})


def _episode_browser(decisions: pl.LazyFrame, episodes: pl.DataFrame, per_group: int, max_rounds: int,
                     budget: int) -> str:
    import polars as pl

    keys = list(metrics.EPISODE_KEYS)
    finished = episodes.filter(pl.col("status") == "finished").sort(
        "scenario_id", "agent", "final_regret", "task_id", "rollout", nulls_last=True)
    failed = episodes.filter(pl.col("status") != "finished").sort("scenario_id", "agent", "task_id", "rollout")
    groups = (episodes.select("scenario_id", "agent").unique().sort("scenario_id", "agent").iter_rows())
    chosen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (agent, scenario), part in finished.group_by(["agent", "scenario_id"], maintain_order=True):
        rows = part.to_dicts()
        chosen[(scenario, agent)] = [dict(r, rank=i + 1, of=len(rows)) for i in _pick(len(rows), per_group)
                                     for r in [rows[i]]]
    picked = [r for rows in chosen.values() for r in rows]
    by_episode: dict[tuple, list[dict[str, Any]]] = {}
    if picked:
        wanted = pl.DataFrame({k: [r[k] for r in picked] for k in keys},
                              schema={k: episodes.schema[k] for k in keys})
        rows = metrics.collect_by_episodes(decisions, lambda part: part.join(wanted.lazy(), on=keys, how="semi").select(
            *keys, "t", "action", "policy", "reward", "regret", "cumulative_regret", "reasoning", "raw_output",
            "parse_status", "messages", "info")).sort(*keys, "t")
        for key, part in rows.group_by(keys, maintain_order=True):
            by_episode[tuple(key)] = part.to_dicts()
    failures: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in failed.iter_rows(named=True):
        failures.setdefault((row["scenario_id"], row["agent"]), []).append(row)

    out = ['<section id="episodes"><h2>Episodes</h2>',
           f'<p class="meta">Up to {per_group} finished episodes per agent and scenario, spread from the lowest to '
           f'the highest final regret; at most {max_rounds} rounds each (first and last); t is the 0-based round. '
           f'Rows whose output could not be parsed are tinted.</p>']
    used = 0
    omitted = 0
    for scenario, agent in groups:
        shown = chosen.get((scenario, agent), [])
        fails = failures.get((scenario, agent), [])
        total = shown[0]["of"] if shown else 0
        note = f"showing {len(shown)} of {total} finished episode{'s' if total != 1 else ''}"
        if fails:
            note += f"; {len(fails)} failed"
        out.append(f'<details class="group"><summary>{_e(scenario)} · {_e(agent)} '
                   f'<span class="meta">({note})</span></summary>')
        for episode in shown:
            key = tuple(episode[k] for k in keys)
            title = (f"task {_e(episode['task_id'])}, rollout {episode['rollout']}: final regret "
                     f"{_num(episode['final_regret'], '.4g')} (rank {episode['rank']} of {episode['of']} by regret)")
            if used > budget:
                omitted += 1
                out.append(f'<p class="note">{title}: not rendered, the page reached its size limit.</p>')
                continue
            facts = episode.get("scenario_summary")
            body = (f'<details><summary>{title}</summary>'
                    f'<p class="meta">framing: {_e(episode.get("framing"))}; horizon {_e(episode.get("horizon"))}; '
                    f'{_e(episode.get("n_actions"))} actions; invalid decisions: {_e(episode.get("n_invalid"))}'
                    + (f"; hidden facts: <code>{_clip(facts, TEXT_LIMITS['info'])}</code>" if facts else "")
                    + "</p>" + _episode_table(by_episode.get(key, []), max_rounds) + "</details>")
            used += len(body)
            out.append(body)
        for row in fails[:per_group]:
            out.append(f'<p class="meta">failed: task {_e(row["task_id"])}, rollout {row["rollout"]}: '
                       f'<code>{_clip(row["error"], TEXT_LIMITS["error"])}</code></p>')
        if len(fails) > per_group:
            out.append(f'<p class="note">… and {len(fails) - per_group} more failed episodes.</p>')
        out.append("</details>")
    rendered = sum(len(v) for v in chosen.values()) - omitted
    out.insert(2, f'<p class="meta" id="episode-sample">Embedded: {rendered} of {finished.height} finished episodes '
                  f"(a sample: at most {per_group} per agent and scenario, and at most {budget / 1e6:.1f} MB of "
                  "episode tables); every episode is in decisions.parquet.</p>")
    if omitted:
        out.append(f'<p class="note">{omitted} sampled episodes were not rendered to keep this page under its '
                   f'{budget / 1e6:.1f} MB episode budget; read them from decisions.parquet.</p>')
    out.append("</section>")
    return "\n".join(out)


def _agent_item(agent: Any) -> str:
    if not isinstance(agent, Mapping):
        return f"<code>{_e(agent)}</code>"
    name = agent.get("label") or agent.get("agent")
    text = f"<code>{_e(name)}</code>"
    if agent.get("agent") and agent.get("agent") != name:
        text += f" = <code>{_e(agent['agent'])}</code>"
    if agent.get("params"):
        text += f' <span class="meta">{_e(json.dumps(agent["params"], sort_keys=True))}</span>'
    return text


def _plan_section(run_dir: Path) -> str:
    try:
        frozen = read_frozen_plan(run_dir)
    except (OSError, ValueError):
        return '<section id="plan"><h2>Plan</h2><p class="note">no readable plan.json</p></section>'
    plan = frozen.get("plan", {}) if isinstance(frozen, Mapping) else {}
    versions = frozen.get("versions", {}) if isinstance(frozen, Mapping) else {}
    agents = plan.get("agents", []) or []
    agent_items = "".join(f"<li>{_agent_item(a)}</li>" for a in agents)
    scenario_rows = "".join(
        f"<tr><td>{_e(s.get('id'))}</td><td>{_e(s.get('family'))}</td>"
        f"<td class=\"text\">{_e(json.dumps(s.get('params', {}), sort_keys=True))}</td><td>{_e(s.get('framing'))}</td>"
        f"<td class=\"num\">{len(s.get('seeds') or [])}</td>"
        f"<td class=\"num\">{_e(plan.get('rollouts') if s.get('rollouts') is None else s.get('rollouts'))}</td></tr>"
        for s in plan.get("scenarios", []) or [] if isinstance(s, Mapping))
    version_text = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(versions.items()))
    return (
        f'<section id="plan"><h2>Plan</h2><p>suite <b>{_e(plan.get("name"))}</b>, master seed {_e(plan.get("seed"))}, '
        f'{_e(plan.get("rollouts"))} rollouts per task by default.</p>'
        f"<details open><summary>{len(agents)} agents</summary><ul>{agent_items}</ul></details>"
        f"<table><tr><th>scenario</th><th>family</th><th>params</th><th>framing</th><th>instances</th>"
        f"<th>rollouts</th></tr>{scenario_rows}</table>"
        f'<p class="meta">versions: {version_text}</p></section>'
    )


def _leaderboard_html(frame: pl.DataFrame, sortable: bool = True, table_id: str | None = "leaderboard") -> str:
    headers, rows = _table_cells(frame)
    numeric = {i for i, h in enumerate(headers) if i >= 3}
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    css = ' class="sortable"' if sortable else ""
    return f"<table{ident}{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(table => {
  table.querySelectorAll('th').forEach((th, index) => {
    th.title = 'click to sort';
    th.addEventListener('click', () => {
      const body = table.tBodies[0];
      const rows = [...body.rows];
      const value = r => { const t = r.cells[index].textContent.trim(); const n = parseFloat(t.replace(/^[[]/, ''));
                           return isNaN(n) ? t : n; };
      const ascending = th.dataset.order !== 'asc';
      rows.sort((a, b) => { const x = value(a), y = value(b);
        const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), undefined, {numeric: true});
        return ascending ? c : -c; });
      table.querySelectorAll('th').forEach(h => delete h.dataset.order);
      th.dataset.order = ascending ? 'asc' : 'desc';
      rows.forEach(r => body.appendChild(r));
    });
  });
});
"""
MAX_IMAGE_BYTES = 6_000_000  # per-scenario plots stop being embedded beyond this (the overview plot stays)


def _image(png: bytes | None, alt: str, css: str = "plot") -> str:
    if not png:
        return ""
    return f'<img class="{css}" alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _plan_of(run_dir: Path) -> dict[str, Any]:
    try:
        return read_plan(run_dir)
    except (OSError, ValueError):
        return {}


def plan_order(plan: Mapping[str, Any]) -> tuple[list[str], list[str], dict[str, list[tuple[str, dict[str, Any]]]]]:
    """Scenario ids and agent labels in the order the suite wrote them, and its sweeps by base id."""
    scenarios = [str(s.get("id")) for s in plan.get("scenarios", []) or [] if isinstance(s, Mapping)]
    agents = [str(a.get("label") or a.get("agent")) if isinstance(a, Mapping) else str(a)
              for a in plan.get("agents", []) or []]
    sweeps: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for entry in plan.get("scenarios", []) or []:
        if isinstance(entry, Mapping) and entry.get("sweep"):
            base = str(entry["id"]).rsplit("/", len(entry["sweep"]))[0]
            sweeps.setdefault(base, []).append((str(entry["id"]), dict(entry["sweep"])))
    return scenarios, agents, sweeps


def in_plan_order(frame: pl.DataFrame, scenarios: list[str]) -> pl.DataFrame:
    """Leaderboard rows by the plan's scenario order (unknown scenarios last, naturally sorted), then mean regret."""
    import polars as pl

    from harness._plan import natural_key

    known = {sid: i for i, sid in enumerate(scenarios)}
    extra = sorted(set(frame["scenario_id"].to_list()) - set(known), key=natural_key)
    known.update({sid: len(scenarios) + i for i, sid in enumerate(extra)})
    return (frame.with_columns(_order=pl.col("scenario_id").replace_strict(known, default=len(known)))
            .sort("_order", "mean_regret", "agent", nulls_last=True).drop("_order"))


def _change_points(decisions: pl.DataFrame) -> list[int]:
    """Rounds where the first episode's best action changes (none, or too many to draw: [])."""
    import polars as pl

    if decisions.is_empty():
        return []
    first = decisions.filter((pl.col("agent") == decisions["agent"][0]) & (pl.col("rollout") == decisions["rollout"].min()))
    best = first.sort("t")["optimal_action"].to_list()
    changes = [t for t in range(1, len(best)) if best[t] is not None and best[t - 1] is not None and best[t] != best[t - 1]]
    return changes if len(changes) <= 20 else []


def _comparison_html(scenario, rows) -> str:
    from harness._compare import _cells, _rate

    best = f"tied for best: <b>{_e(', '.join(scenario.tied_for_best))}</b> (lowest mean: {_e(scenario.best)})"
    head = "".join(f"<th>{h}</th>" for h in ("agent", "versus", "design", "pairs", "tasks", "difference [95% CI]",
                                              "p", "p (holm)"))
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in _cells(r)) + "</tr>" for r in rows)
    agents = list(scenario.win_rate)
    matrix = ("<table class=\"winrate\"><tr><th>wins ↓ vs →</th>" + "".join(f"<th>{_e(a)}</th>" for a in agents) + "</tr>"
              + "".join(f"<tr><th>{_e(a)}</th>" + "".join(f'<td class="num">{_rate(scenario.win_rate[a].get(b))}</td>'
                                                          for b in agents) + "</tr>" for a in agents) + "</table>")
    return (f'<div class="comparison"><p>{best}</p><table class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table><details><summary>win-rate matrix (share of shared episodes the row agent "
            f"beats the column agent)</summary>{matrix}</details></div>")


def _self_correction_html(markdown: str) -> str:
    """The RISE metrics section, from its Markdown table."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]
    head = "".join(f"<th>{_e(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    note = markdown.strip().splitlines()[-1]
    return (f'<section id="self-correction-section"><h2>Self-correction</h2><p class="meta">{_e(note)}</p>'
            f'<div class="scroll"><table id="self-correction"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div></section>")


def render_html(run_dir: str | Path, frame: pl.DataFrame, png: bytes, decisions: pl.LazyFrame,
                episodes: pl.DataFrame, *, episodes_per_group: int = EPISODES_PER_GROUP,
                max_rounds: int = MAX_ROUNDS, max_bytes: int = MAX_HTML_BYTES,
                curves: pl.DataFrame | None = None, extra: str = "") -> str:
    """The self-contained report page as a string: navigation, plan, sortable leaderboard, the
    comparison, sweeps, one section per scenario (linear and log-log curves, action histograms,
    paired comparison with the best) and a sample of episodes; `extra` (sections such as the
    self-correction metrics) goes right after the leaderboard."""
    import polars as pl

    from harness._compare import compare_episodes

    run_dir = Path(run_dir)
    plan = _plan_of(run_dir)
    scenario_order, agent_order, sweeps = plan_order(plan)
    frame = in_plan_order(frame, scenario_order)
    scenarios = list(dict.fromkeys(frame["scenario_id"].to_list()))
    present = set(frame["agent"].to_list())
    agents = [a for a in agent_order if a in present] + sorted(present - set(agent_order))
    finished = int(frame["episodes"].sum() or 0) if len(frame) else 0
    failed = int(frame["failed"].sum() or 0) if len(frame) else 0
    if curves is None:
        curves = metrics.regret_curves(decisions)
    comparison = compare_episodes(episodes) if finished else None
    by_scenario = {s.scenario_id: s for s in comparison.scenarios} if comparison else {}
    nav = ['<nav id="nav"><b>Contents:</b> <a href="#plan">plan</a> · <a href="#leaderboard-section">leaderboard</a>'
           ' · <a href="#comparison">comparison</a>' + (" · <a href=\"#sweeps\">sweeps</a>" if sweeps else "")
           + ' · <a href="#episodes">episodes</a><br><b>Scenarios:</b> '
           + " · ".join(f'<a href="#scenario-{i}">{_e(sid)}</a>' for i, sid in enumerate(scenarios)) + "</nav>"]
    sections = []
    image_bytes = 0
    first_tasks = {}
    if scenarios:
        tasks = episodes.filter(pl.col("status") == "finished").group_by("scenario_id").agg(pl.col("task_id").min())
        first_tasks = dict(tasks.iter_rows())
    task_rows = (decisions.filter(pl.col("task_id").is_in(list(first_tasks.values())))
                 .select("agent", "scenario_id", "rollout", "t", "action", "optimal_action")
                 .collect(engine=metrics.ENGINE)) if first_tasks else None
    for i, scenario_id in enumerate(scenarios):
        part = frame.filter(pl.col("scenario_id") == scenario_id)
        tasks = int(part["tasks"].max() or 0)
        header = (f'<section id="scenario-{i}" class="scenario"><h2>{_e(scenario_id)}</h2>'
                  f'<p class="meta">{tasks} task{"s" if tasks != 1 else ""}, '
                  f'{int(part["episodes"].sum() or 0)} finished episodes'
                  + ("; one task: intervals cover this instance only" if tasks == 1 else "") + "</p>")
        body = [header, f'<div class="scroll">{_leaderboard_html(part, sortable=True, table_id=None)}</div>']
        if image_bytes < MAX_IMAGE_BYTES:
            rows = task_rows.filter(pl.col("scenario_id") == scenario_id) if task_rows is not None else None
            change = _change_points(rows) if rows is not None else []
            curve_png = plot_scenario_curves(curves.filter(pl.col("scenario_id") == scenario_id), agents, change)
            action_png = plot_actions(rows, agents) if rows is not None and not rows.is_empty() else None
            image_bytes += len(curve_png) + len(action_png or b"")
            body.append(_image(curve_png, f"{scenario_id}: mean cumulative regret, linear and log-log", "plot curves"))
            if action_png:
                body.append(f'<p class="meta">Actions in task {_e(first_tasks.get(scenario_id))} (all its rollouts):</p>'
                            + _image(action_png, f"{scenario_id}: pulls per arm over time", "plot actions"))
        else:
            body.append('<p class="note">plots omitted to bound the page size; see regret_curves.png</p>')
        if scenario_id in by_scenario:
            best = by_scenario[scenario_id].best
            rows_vs_best = [r for r in comparison.rows if r.scenario_id == scenario_id and r.versus == best]
            body.append("<h3>Paired comparison</h3>" + _comparison_html(by_scenario[scenario_id], rows_vs_best))
        body.append("</section>")
        sections.append("".join(body))
    sweep_html = ""
    if sweeps:
        images = [f"<h3>{_e(base)}</h3>" + (_image(plot_sweep(frame, swept, agents), f"{base}: regret against the sweep")
                                            or '<p class="note">not a single numeric swept parameter</p>')
                  for base, swept in sweeps.items()]
        sweep_html = '<section id="sweeps"><h2>Sweeps</h2>' + "".join(images) + "</section>"
    comparison_html = '<section id="comparison"><h2>Comparison</h2>'
    if comparison is not None and comparison.rows:
        comparison_html += (f'<p class="meta">Paired differences in final regret on shared episodes (common random '
                            f"numbers), task-clustered 95% intervals, two-sided p-values raw and Holm-adjusted over "
                            f"all {len(comparison.rows)} pairs; per scenario, the agents statistically tied for best. "
                            f"<code>regret compare {_e(run_dir.name)}</code> writes the full tables.</p>"
                            + _image(comparison.forest_png(), "forest plot: each agent against the best", "plot forest"))
    else:
        comparison_html += '<p class="note">fewer than two agents: nothing to compare</p>'
    comparison_html += "</section>"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Regret report: {_e(run_dir.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Regret report: {_e(run_dir.name)}</h1>",
        f'<p class="meta">{finished} finished and {failed} failed episodes.</p>',
        *nav,
        _plan_section(run_dir),
        '<section id="leaderboard-section"><h2>Leaderboard</h2>',
        f'<p class="meta">{_e(LEADERBOARD_NOTE)} {_e(SINGLE_TASK_NOTE)} Click a column header to sort.</p>',
        f'<div class="scroll">{_leaderboard_html(frame)}</div>',
        "<h3>Regret curves</h3>",
        f'<img id="regret-plot" alt="mean cumulative regret per round with 95% bands" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></section>',
        extra,
        comparison_html,
        sweep_html,
        *sections,
        _episode_browser(decisions, episodes, episodes_per_group, max_rounds, max_bytes),
        f"<script>{_SORT_SCRIPT}</script>",
        "</body></html>",
        "",
    ])


# --- entry points ------------------------------------------------------------------------
def write_report(
    run_dir: str | Path,
    *,
    leaderboard: pl.DataFrame | None = None,
    episodes_per_group: int = EPISODES_PER_GROUP,
    max_rounds: int = MAX_ROUNDS,
    max_html_bytes: int = MAX_HTML_BYTES,
) -> dict[str, Path]:
    """Write leaderboard.md/.csv/.parquet, regret_curves.png and report.html into `run_dir`.

    `leaderboard` may be passed when already computed. Returns {"markdown", "csv", "parquet",
    "plot", "html"} -> path.
    """
    from harness._store import load_run

    if episodes_per_group < 0:
        raise ConfigError(f"episodes_per_group must be >= 0, got {episodes_per_group}")
    if max_rounds < 1:
        raise ConfigError(f"max_rounds must be >= 1, got {max_rounds}")
    run_dir = Path(run_dir)
    decisions, episodes = load_run(run_dir)
    if leaderboard is None:
        leaderboard = metrics.leaderboard(decisions, episodes)
    leaderboard = in_plan_order(leaderboard, plan_order(_plan_of(run_dir))[0])
    paths = {name: run_dir / filename for name, filename in REPORT_FILES.items()}
    atomic_write_bytes(paths["markdown"], leaderboard_markdown(leaderboard).encode())
    buffer = io.BytesIO()
    leaderboard.write_csv(buffer)
    atomic_write_bytes(paths["csv"], buffer.getvalue())
    buffer = io.BytesIO()
    leaderboard.write_parquet(buffer)
    atomic_write_bytes(paths["parquet"], buffer.getvalue())
    scenario_order, agent_order, _ = plan_order(_plan_of(run_dir))
    curves = metrics.regret_curves(decisions)
    plot_regret_curves(curves, paths["plot"], scenario_order, agent_order)
    import polars as pl

    from harness._self_correction import self_correction_markdown, self_correction_table

    answers = self_correction_table(decisions, episodes)
    extra = ""
    if len(answers):  # answer scenarios: the RISE metrics beside the leaderboard
        markdown = self_correction_markdown(answers)
        paths["self_correction"] = run_dir / "self_correction.md"
        atomic_write_bytes(paths["self_correction"], markdown.encode())
        paths["self_correction_csv"] = run_dir / "self_correction.csv"
        buffer = io.BytesIO()
        answers.with_columns(answers[c].list.eval(pl.element().round(6)).cast(pl.List(pl.String)).list.join(" ")
                             for c in ("accuracy_by_turn", "solved_by_turn")).write_csv(buffer)
        atomic_write_bytes(paths["self_correction_csv"], buffer.getvalue())
        extra = _self_correction_html(markdown)
    page = render_html(run_dir, leaderboard, paths["plot"].read_bytes(), decisions,
                       episodes.collect(engine=metrics.ENGINE), episodes_per_group=episodes_per_group,
                       max_rounds=max_rounds, max_bytes=max_html_bytes, curves=curves, extra=extra)
    atomic_write_bytes(paths["html"], page.encode("utf-8"))
    return paths


def report_run(run_dir: str | Path, console: Console | None = None, **options: Any) -> dict[str, Path]:
    """Load a run, print its leaderboard and write every report file; returns their paths."""
    from harness._store import load_run

    decisions, episodes = load_run(run_dir)
    frame = in_plan_order(metrics.leaderboard(decisions, episodes), plan_order(_plan_of(Path(run_dir)))[0])
    print_leaderboard(frame, console)
    paths = write_report(run_dir, leaderboard=frame, **options)
    if "self_correction" in paths:
        from rich.console import Console

        (console or Console(width=200)).print(paths["self_correction"].read_text(), markup=False)
    return paths


__all__ = [
    "leaderboard_markdown", "plot_regret_curves", "print_leaderboard", "render_html", "report_run", "write_report",
]
