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
from harness._files import atomic_write_bytes, read_frozen_plan
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
MAX_HTML_BYTES = 20_000_000  # the episode browser stops rendering episodes beyond this
TEXT_LIMITS = {"prompt": 1500, "messages": 6000, "reasoning": 3000, "raw": 2000, "info": 1000, "error": 2000}
PLOT_DPI = 100


# --- formatting --------------------------------------------------------------------------
_num = metrics.format_number
_pvalue = metrics.format_pvalue
_percent = metrics.format_percent


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
        "Mean final regret over finished episodes with a 95% Student-t interval; beta is the regret-growth",
        "slope (beta < 1: sublinear) with the one-sided p-value of beta >= 1; SuffFail and MinFrac for bandits.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
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
    for name in ("n", "mean regret ± 95% CI", "beta (p)", "SuffFail", "MinFrac", "invalid", "cost $"):
        table.add_column(name, justify="right")
    previous = None
    for row in frame.sort("scenario_id", "mean_regret", "agent", nulls_last=True).iter_rows(named=True):
        scenario = row["scenario_id"]
        if scenario != previous:
            if previous is not None:
                table.add_section()
            table.add_row(Text(scenario, style="bold cyan", overflow="fold"))
            previous = scenario
        n = str(row["episodes"]) + (f" (+{row['failed']} failed)" if row["failed"] else "")
        mean = _num(row["mean_regret"])
        if row["ci_low"] is not None:
            mean += f" ± {(row['ci_high'] - row['ci_low']) / 2:.3f}"
        beta = "–" if row["beta"] is None else f"{row['beta']:.2f} ({_pvalue(row['beta_pvalue'])})"
        cost = row["cost"] or 0.0
        table.add_row(
            "  " + row["agent"], n, mean, beta, _num(row["suff_fail_freq"], ".2f"), _num(row["min_frac"], ".2f"),
            _percent(row["invalid_rate"]), "0" if cost == 0 else f"{cost:.4f}",
        )
    console.print(table)


# --- the plot ----------------------------------------------------------------------------
def plot_regret_curves(curves: pl.DataFrame, path: str | Path) -> Path:
    """Write the regret-curve PNG (one subplot per scenario, sorted agents, deterministic bytes).

    Draws on an Agg canvas created here, without pyplot, so no global backend is touched.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    scenarios = sorted(curves["scenario_id"].unique().to_list())
    agents = sorted(curves["agent"].unique().to_list())
    n = max(len(scenarios), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    figure = Figure(figsize=(5.0 * ncols, 3.4 * nrows + 0.4 + 0.25 * math.ceil(len(agents) / 6)),
                    dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    palette = matplotlib.colormaps["tab10"]  # distinct colours; beyond 10 agents the line style changes
    styles = ("-", "--", "-.", ":")
    colors = {a: (palette(i % palette.N), styles[(i // palette.N) % len(styles)]) for i, a in enumerate(agents)}
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
img#regret-plot { max-width: 100%; height: auto; border: 1px solid #eee; }
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
        rows = (decisions.join(wanted.lazy(), on=keys, how="semi")
                .select(*keys, "t", "action", "policy", "reward", "regret", "cumulative_regret", "reasoning",
                        "raw_output", "parse_status", "messages", "info")
                .sort(*keys, "t").collect(engine=metrics.ENGINE))
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
    if omitted:
        out.append(f'<p class="note">{omitted} episodes were not rendered to keep this page under '
                   f'{budget / 1e6:.0f} MB; read them from decisions.parquet.</p>')
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


def _leaderboard_html(frame: pl.DataFrame) -> str:
    headers, rows = _table_cells(frame)
    numeric = {i for i, h in enumerate(headers) if i >= 3}
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _self_correction_html(markdown: str) -> str:
    """The RISE metrics section, from its Markdown table."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]
    head = "".join(f"<th>{_e(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    note = markdown.strip().splitlines()[-1]
    return (f'<h2>Self-correction</h2><p class="meta">{_e(note)}</p>'
            f'<table id="self-correction"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def render_html(run_dir: str | Path, frame: pl.DataFrame, png: bytes, decisions: pl.LazyFrame,
                episodes: pl.DataFrame, *, episodes_per_group: int = EPISODES_PER_GROUP,
                max_rounds: int = MAX_ROUNDS, max_bytes: int = MAX_HTML_BYTES, extra: str = "") -> str:
    """The self-contained report page as a string (`extra`: sections placed after the leaderboard)."""
    run_dir = Path(run_dir)
    image = base64.b64encode(png).decode("ascii")
    finished = int(frame["episodes"].sum() or 0) if len(frame) else 0
    failed = int(frame["failed"].sum() or 0) if len(frame) else 0
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Regret report: {_e(run_dir.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Regret report: {_e(run_dir.name)}</h1>",
        f'<p class="meta">{finished} finished and {failed} failed episodes.</p>',
        _plan_section(run_dir),
        "<h2>Leaderboard</h2>",
        '<p class="meta">Mean final regret over finished episodes with a 95% Student-t interval. beta: slope of '
        "log R_t = beta log t + c on the mean regret curve (first 10% of rounds skipped), with the one-sided "
        "p-value of beta &gt;= 1 (small p: sublinear, no-regret). SuffFail: share of episodes never playing the "
        "best arm in the second half. MinFrac: K times the smallest share of pulls any arm got.</p>",
        _leaderboard_html(frame),
        extra,
        "<h2>Regret curves</h2>",
        f'<img id="regret-plot" alt="mean cumulative regret per round with 95% bands" '
        f'src="data:image/png;base64,{image}">',
        _episode_browser(decisions, episodes, episodes_per_group, max_rounds, max_bytes),
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
    paths = {name: run_dir / filename for name, filename in REPORT_FILES.items()}
    atomic_write_bytes(paths["markdown"], leaderboard_markdown(leaderboard).encode())
    buffer = io.BytesIO()
    leaderboard.write_csv(buffer)
    atomic_write_bytes(paths["csv"], buffer.getvalue())
    buffer = io.BytesIO()
    leaderboard.write_parquet(buffer)
    atomic_write_bytes(paths["parquet"], buffer.getvalue())
    plot_regret_curves(metrics.regret_curves(decisions), paths["plot"])
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
                       max_rounds=max_rounds, max_bytes=max_html_bytes, extra=extra)
    atomic_write_bytes(paths["html"], page.encode("utf-8"))
    return paths


def report_run(run_dir: str | Path, console: Console | None = None, **options: Any) -> dict[str, Path]:
    """Load a run, print its leaderboard and write every report file; returns their paths."""
    from harness._store import load_run

    decisions, episodes = load_run(run_dir)
    frame = metrics.leaderboard(decisions, episodes)
    print_leaderboard(frame, console)
    paths = write_report(run_dir, leaderboard=frame, **options)
    if "self_correction" in paths:
        from rich.console import Console

        (console or Console(width=200)).print(paths["self_correction"].read_text(), markup=False)
    return paths


__all__ = [
    "leaderboard_markdown", "plot_regret_curves", "print_leaderboard", "render_html", "report_run", "write_report",
]
