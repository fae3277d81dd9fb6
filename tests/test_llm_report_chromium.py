"""The HTML report of an LLM run, opened in headless Chromium (Debian's `chromium`, installed by
.ci/run): the leaderboard, the regret plot and one episode's reasoning must be visible to a person
who clicks open the episode; the navigation must jump to a scenario section whose linear/log-log
curves, action histograms and paired comparison are visible; clicking a leaderboard header must
sort it. Screenshots llm_report_{top,scenario,episode}.png go to the test's tmp folder, or to the folder
$REGRET_TEST_ARTIFACTS names (tests write nothing into the checkout)."""

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import parse_suite, run_plan
from harness.testing.openai_server import ScriptedServer, round_robin_policy

REASONING = "Blue and green look close; red has barely been tried, so I will cycle."
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's "
                                                          "chromium package; locally: apt-get install chromium)")

# run in the page: sort the leaderboard by mean regret (twice), then jump to the first scenario's section
VIEWS = """
(async () => {
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const visible = el => !!el && el.checkVisibility() && el.getBoundingClientRect().width > 0;
  const board = document.querySelector('#leaderboard');
  const column = [...board.tHead.rows[0].cells].findIndex(th => th.textContent.startsWith('mean regret'));
  const values = () => [...board.tBodies[0].rows].map(r => parseFloat(r.cells[column].textContent));
  board.tHead.rows[0].cells[column].click(); await frame();
  const ascending = values();
  board.tHead.rows[0].cells[column].click(); await frame();
  const descending = values();
  const link = document.querySelector('nav a[href="#scenario-0"]');
  link.click(); await frame();
  const section = document.querySelector('#scenario-0');
  const top = section.getBoundingClientRect().top;
  const images = ['img.curves', 'img.actions'].map(q => section.querySelector(q));
  const forest = document.querySelector('#comparison img.forest');
  return {
    sortedUp: ascending.every((v, i) => i === 0 || ascending[i - 1] <= v),
    sortedDown: descending.every((v, i) => i === 0 || descending[i - 1] >= v) && ascending.length > 1,
    jumped: top >= -2 && top < window.innerHeight / 2,
    curves: visible(images[0]) && images[0].naturalWidth > 300,
    actions: visible(images[1]) && images[1].naturalWidth > 100,
    comparison: section.textContent.includes('tied for best') && !!forest && forest.naturalWidth > 100,
    sample: /Embedded: \\d+ of \\d+ finished episodes/.test(document.querySelector('#episode-sample').textContent),
  };
})()
"""

# run in the page: click the LLM agent's first episode open (as a person would) and report visibility
PROBE = """
(async () => {
  const visible = el => !!el && el.checkVisibility() && el.getBoundingClientRect().width > 0
                        && el.getBoundingClientRect().height > 0;
  const board = document.querySelector('#leaderboard');
  const boardText = board ? board.innerText : '';
  const img = [...document.querySelectorAll('img')].find(i => i.src.startsWith('data:image/png'));
  const group = [...document.querySelectorAll('details.group')]
      .find(d => d.querySelector('summary').textContent.includes('openai/scripted'));
  group.querySelector('summary').click();
  const episode = group.querySelector('details');
  episode.querySelector('summary').click();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const cells = [...episode.querySelectorAll('td')].filter(td => td.textContent.includes(%s));
  if (cells.length) cells[0].scrollIntoView({block: 'center'});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return {
    board: visible(board), boardHasLLM: boardText.includes('openai/scripted'), boardHasUCB: boardText.includes('ucb1'),
    plot: visible(img) && img.naturalWidth > 100, reasoning: cells.length > 0 && visible(cells[0]),
  };
})()
""" % json.dumps(REASONING)


async def inspect_page(url: str, profile: Path) -> tuple[dict, list[bytes]]:
    import aiohttp

    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             "--window-size=1400,1000", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()) and time.time() < deadline:
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 10**6))

                async def call(method, **params):
                    request_id = next(ids)
                    await ws.send_json({"id": request_id, "method": method, "params": params})
                    async for message in ws:
                        data = json.loads(message.data)
                        if data.get("id") == request_id:
                            assert "error" not in data, data
                            return data["result"]

                await call("Page.enable")
                await call("Page.navigate", url=url)
                for _ in range(100):  # until the page (a self-contained file) has loaded
                    state = await call("Runtime.evaluate", expression="document.readyState", returnByValue=True)
                    if state["result"]["value"] == "complete":
                        break
                    await asyncio.sleep(0.1)
                top = await call("Page.captureScreenshot", format="png")  # leaderboard and plot
                views = await call("Runtime.evaluate", expression=VIEWS, awaitPromise=True, returnByValue=True)
                scenario = await call("Page.captureScreenshot", format="png")  # the first scenario's section
                result = await call("Runtime.evaluate", expression=PROBE, awaitPromise=True, returnByValue=True)
                episode = await call("Page.captureScreenshot", format="png")  # the opened episode
                seen = {**views["result"]["value"], **result["result"]["value"]}
                return seen, [base64.b64decode(s["data"]) for s in (top, scenario, episode)]
    finally:
        proc.kill()
        proc.wait()


def test_report_shows_leaderboard_plot_and_reasoning_in_chromium(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))
    with ScriptedServer(round_robin_policy(REASONING)) as server:
        plan = parse_suite({
            "seed": 1, "rollouts": 2,
            "agents": [{"agent": "openai/scripted", "api_base": server.api_base}, "ucb1"],
            "scenarios": [{"id": "bern", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 6}}],
        })
        run_plan(plan, tmp_path / "run")
    from harness.report import write_report

    paths = write_report(tmp_path / "run")
    seen, shots = asyncio.run(inspect_page(paths["html"].resolve().as_uri(), tmp_path / "profile"))
    artifacts = Path(os.environ.get("REGRET_TEST_ARTIFACTS") or tmp_path / "artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    for name, png in zip(("llm_report_top.png", "llm_report_scenario.png", "llm_report_episode.png"), shots):
        (artifacts / name).write_bytes(png)
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert seen == {"board": True, "boardHasLLM": True, "boardHasUCB": True, "plot": True, "reasoning": True,
                    "sortedUp": True, "sortedDown": True, "jumped": True, "curves": True, "actions": True,
                    "comparison": True, "sample": True}
