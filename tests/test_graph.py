"""Graph reasoning: generator, exact path checker, answer parsing, framings, regret."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scenarios.graph import (
    LONGER,
    MISSED_PATH,
    NO_PATH,
    NON_EDGE,
    REPEATED_NODE,
    SHORTEST,
    UNKNOWN_NODE,
    UNPARSEABLE,
    WRONG_ENDPOINTS,
    Graph,
    PathAnswer,
    PathProblem,
    check_path,
    generate_problem,
    get_graph_framing,
    level_template,
    parse_length,
    parse_path,
)

NAMES = list("ABCDEFGH")
#   A - B - D - F        two shortest paths A..F of 3 edges (A-B-D-F, A-C-D-F)
#    \     /             a longer one A-C-E-D-F... (4 edges), E a detour
#     C - E              G - H a separate component
DIAMOND = Graph(8, ((0, 1), (1, 3), (3, 5), (0, 2), (2, 3), (2, 4), (4, 3), (6, 7)))


def idx(text: str) -> list[int]:
    return [NAMES.index(c) for c in text]


@pytest.mark.parametrize("path", ["ABDF", "ACDF"])
def test_every_shortest_path_is_correct(path):
    check = check_path(PathProblem(DIAMOND, 0, 5), idx(path))
    assert (check.outcome, check.regret, check.reward, check.correct) == (SHORTEST, 0.0, 1.0, True)


def test_outcomes_of_wrong_paths_each_have_their_own_value():
    problem = PathProblem(DIAMOND, 0, 5)
    worst = DIAMOND.n_nodes - 1
    cases = {
        "ACEDF": (LONGER, 1.0),  # valid but one edge too many
        "ABF": (NON_EDGE, worst),  # B - F is no edge
        "BDF": (WRONG_ENDPOINTS, worst),
        "ABD": (WRONG_ENDPOINTS, worst),
        "ACDCDF": (REPEATED_NODE, worst),  # a walk, not a simple path
        "A": (WRONG_ENDPOINTS, worst),
    }
    for path, (outcome, regret) in cases.items():
        check = check_path(problem, idx(path))
        assert (check.outcome, check.regret, check.reward) == (outcome, regret, 0.0), path
    assert check_path(problem, [0, 9, 5]).outcome == UNKNOWN_NODE
    assert check_path(problem, PathAnswer(nodes=(0, -1, 5), unknown=("Q",))).detail.startswith("the path names 'Q'")
    assert check_path(problem, PathAnswer(error="empty answer")).outcome == UNPARSEABLE
    assert check_path(problem, None).outcome == UNPARSEABLE
    assert check_path(problem, PathAnswer(no_path=True)).outcome == MISSED_PATH
    # failure is worse than the longest valid path could be
    assert worst > (DIAMOND.n_nodes - 1) - problem.distance


def test_disconnected_pair():
    problem = PathProblem(DIAMOND, 0, 7)  # H sits in another component
    assert problem.distance is None
    assert check_path(problem, PathAnswer(no_path=True)).outcome == NO_PATH
    assert check_path(problem, PathAnswer(no_path=True)).correct
    assert check_path(problem, idx("ABDFH")).outcome == NON_EDGE
    assert check_path(problem, idx("ABD")).outcome == WRONG_ENDPOINTS
    assert check_path(problem, idx("GH")).outcome == WRONG_ENDPOINTS


def test_graph_rejects_loops_and_foreign_nodes():
    with pytest.raises(ValueError, match="loop"):
        Graph(3, ((1, 1),))
    with pytest.raises(ValueError, match="outside"):
        Graph(3, ((0, 3),))
    assert Graph(3, ((2, 0), (0, 2))).edges == ((0, 2),)


@pytest.mark.parametrize("level", [1, 2, 3, 4, 6, 10])
def test_levels_set_the_distance_and_size_and_graphs_are_connected(level):
    low, high, _ = level_template(level)
    sizes = set()
    for seed in range(40):
        problem = generate_problem(level, np.random.default_rng([seed, level]))
        graph = problem.graph
        assert low <= graph.n_nodes <= high
        assert problem.distance == level + 1
        assert all(d is not None for d in graph.distances(0)), "connected"
        sizes.add(graph.n_nodes)
    assert len(sizes) > 1


def test_extra_edges_fall_with_the_level_and_several_shortest_paths_occur():
    def density(level):
        graphs = [generate_problem(level, np.random.default_rng([s, level])).graph for s in range(40)]
        return np.mean([len(g.edges) / (g.n_nodes * (g.n_nodes - 1) / 2) for g in graphs])

    assert density(1) > density(3) > density(6)
    counts = [_count_shortest_paths(generate_problem(2, np.random.default_rng(s))) for s in range(40)]
    assert max(counts) > 1 and min(counts) >= 1


def _count_shortest_paths(problem: PathProblem) -> int:
    graph, dist = problem.graph, problem.graph.distances(problem.source)
    ways = [0] * graph.n_nodes
    ways[problem.source] = 1
    for node in sorted(range(graph.n_nodes), key=lambda v: dist[v]):
        for nxt in graph.neighbours()[node]:
            if dist[nxt] == dist[node] + 1:
                ways[nxt] += ways[node]
    return ways[problem.target]


def test_determinism_per_seed_and_level():
    a = generate_problem(3, np.random.default_rng(7))
    b = generate_problem(3, np.random.default_rng(7))
    assert a == b
    assert generate_problem(3, np.random.default_rng(8)) != a
    assert generate_problem(4, np.random.default_rng(7)) != a
    # the source is not always the same index (labels are permuted)
    sources = {generate_problem(2, np.random.default_rng(s)).source for s in range(20)}
    assert len(sources) > 3


def test_generator_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="at least 4 nodes"):
        generate_problem(2, np.random.default_rng(0), min_nodes=3, max_nodes=3)
    with pytest.raises(ValueError, match="level must be >= 1"):
        level_template(0)


# --- parsing -----------------------------------------------------------------------------

PARSED = {
    "ANSWER: A -> B -> D": "ABD",
    "I compare both routes.\nANSWER: A -> C -> D -> F": "ACDF",
    "answer: A->B->D": "ABD",
    "**Answer:** A → B → D": "ABD",
    "ANSWER: A, B, D.": "ABD",
    "ANSWER: A, B and D": "ABD",
    'ANSWER: ["A", "B", "D"]': "ABD",
    "ANSWER: [A, B, D]": "ABD",
    "ANSWER: A - B - D": "ABD",
    "ANSWER: A-B-D": "ABD",
    "ANSWER: A B D": "ABD",
    "ANSWER: A to B to D": "ABD",
    "ANSWER: node A -> node B -> node D": "ABD",
    "ANSWER: a -> b -> d": "ABD",  # lower-case letters right by arrows
    "ANSWER: A -> B -> D (2 edges)": "ABD",
    "ANSWER: A -> B -> D, which is the shortest.": "ABD",
    "ANSWER: A -> B -> D I think": "ABD",
    "ANSWER: `A -> B -> D`": "ABD",
    "ANSWER:\nA -> B -> D": "ABD",
    "A -> B -> D": "ABD",  # no prefix, one path in the whole reply
    "ANSWER: A -> B -> D, i.e. A -> B -> D": "ABD",  # the same path twice is not ambiguous
    "The route is A -> B -> F.\nANSWER: A -> C -> D": "ACD",  # only the answer line counts
}


@pytest.mark.parametrize("text,expected", PARSED.items())
def test_parse_real_path_answers(text, expected):
    answer = parse_path(text, NAMES)
    assert answer.nodes == tuple(idx(expected)), answer


UNREADABLE = [
    "",
    "ANSWER: hello",
    "ANSWER: A -> B -> D or A -> C -> D",  # two paths: never guess
    "From A to D we can go A -> B -> D.",  # no prefix, two chains (A to D, A -> B -> D)
    "ANSWER: A -> B, D",  # separators of two kinds
    "ANSWER: a, b, d",  # lower-case single letters without arrows are words, not nodes
    "ANSWER:",
]


@pytest.mark.parametrize("text", UNREADABLE)
def test_ambiguous_or_malformed_answers_are_unparseable(text):
    answer = parse_path(text, NAMES)
    assert not answer.parsed and answer.error, answer
    assert check_path(PathProblem(DIAMOND, 0, 3), answer).outcome == UNPARSEABLE


def test_unknown_node_names_and_no_path_answers():
    answer = parse_path("ANSWER: A -> Q -> D", NAMES)
    assert answer.nodes == (0, -1, 3) and answer.unknown == ("Q",)
    assert check_path(PathProblem(DIAMOND, 0, 3), answer).outcome == UNKNOWN_NODE
    assert parse_path("ANSWER: A -> B -> Z", NAMES).unknown == ("Z",)
    for text in ("ANSWER: none", "ANSWER: There is no path.", "ANSWER: unreachable"):
        assert parse_path(text, NAMES).no_path, text
    assert parse_path("ANSWER: D", NAMES).nodes == (3,)


def test_multi_letter_names_match_in_any_case():
    names = ["Alice", "Bruno", "Chloe"]
    assert parse_path("ANSWER: alice -> BRUNO -> Chloe", names).nodes == (0, 1, 2)
    assert parse_path("ANSWER: Alice, Bruno, Chloe.", names).nodes == (0, 1, 2)
    assert parse_path("ANSWER: person Alice -> person Chloe", names, ("person",)).nodes == (0, 2)


def test_parse_length():
    assert parse_length("ANSWER: 3") == 3
    assert parse_length("So the answer is short.\nANSWER: 3.") == 3
    assert parse_length("ANSWER: 3 edges") == 3
    assert parse_length("ANSWER: 3 or 4") is None
    assert parse_length("ANSWER: three") is None
    assert parse_length("ANSWER: 2.5") is None


# --- framings ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["letters", "cities", "friends"])
def test_framings_pose_the_graph_and_read_back_their_own_paths(name):
    framing = get_graph_framing(name)
    problem = generate_problem(3, np.random.default_rng(11))
    text = framing.describe(problem)
    names = framing.node_names(problem.graph.n_nodes)
    assert names[problem.source] in text and names[problem.target] in text
    assert "4" not in text.split("\n")[-1]  # the distance is not told
    for u, v in problem.graph.edges:  # every edge is in the text
        assert names[u] in text and names[v] in text
    shortest = _one_shortest_path(problem)
    reply = f"Let me think.\nANSWER: {framing.path_text(problem, shortest)}"
    assert check_path(problem, framing.parse(problem, reply)).outcome == SHORTEST


def test_adjacency_text_lists_each_nodes_neighbours():
    framing = get_graph_framing("friends")
    graph = Graph(3, ((0, 1), (1, 2)))
    assert framing.graph_text(graph) == "Alice knows: Bruno.\nBruno knows: Alice, Chloe.\nChloe knows: Bruno."
    assert get_graph_framing("letters").graph_text(graph) == "The edges (each one goes both ways): A - B, B - C."


def _one_shortest_path(problem: PathProblem) -> list[int]:
    to_target = problem.graph.distances(problem.target)
    path = [problem.source]
    while path[-1] != problem.target:
        path.append(min(v for v in problem.graph.neighbours()[path[-1]] if to_target[v] == to_target[path[-1]] - 1))
    return path


# --- the scenario family and its agents --------------------------------------------------

def test_family_checks_text_and_node_sequences():
    from scenarios import ScenarioError, make

    env = make("graph/shortest-path", {"level": 2, "names": "cities"}, 5)
    observation = env.reset(0)
    problem = observation.problem
    assert env.horizon == 1 and env.kind == "answer" and problem.distance == 3
    assert "Amber" in env.describe() and "ANSWER:" in env.action_space.instructions(None)
    path = _one_shortest_path(problem)
    step = env.step(f"I think so.\nANSWER: {env.framing.path_text(problem, path)}")
    assert (step.reward, step.regret, step.done, step.feedback["outcome"]) == (1.0, 0.0, True, SHORTEST)
    assert step.feedback["answer"] == path
    with pytest.raises(ScenarioError, match="episode is over"):
        env.step(path)
    env.reset(1)
    assert env.step(tuple(path[:-1])).feedback["outcome"] == WRONG_ENDPOINTS
    assert env.difficulty()["level"] == 2.0 and env.summary()["distance"] == 3
    env.reset(2)
    with pytest.raises(ScenarioError, match="answer with a path"):
        env.step(3)
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(200):  # random replies exercise every failure the checker knows, deterministically
        env.reset(0)
        outcomes.add(env.step(env.sample_action(rng)).feedback["outcome"])
    assert {WRONG_ENDPOINTS, NON_EDGE} <= outcomes
    length = make("graph/shortest-path", {"level": 2, "ask": "length"}, 5)
    length.reset(0)
    assert length.step("ANSWER: 3").reward == 1.0
    length.reset(0)
    assert length.step("ANSWER: 4").regret == length.n_actions - 1
    assert "<your number>" in length.action_space.instructions(None)
    assert "Amber -> Brookfield" in env.action_space.instructions(None)  # the example uses the framing's names
    for bad, message in (({"level": 0}, "level must be >= 1"), ({"ask": "nodes"}, "ask must be one of"),
                         ({"names": "colours"}, "unknown graph framing"),
                         ({"level": 3, "max_nodes": 4, "min_nodes": 4}, "needs at least 5 nodes")):
        with pytest.raises(ScenarioError, match=message):
            make("graph/shortest-path", bad)


def test_bfs_is_exact_and_random_walk_is_a_valid_walk(tmp_path):
    import polars as pl

    from harness._plan import parse_suite
    from harness._runner import run_plan

    plan = parse_suite({"agents": ["bfs", "random-walk"], "rollouts": 3, "scenarios": [
        {"id": "g", "family": "graph/shortest-path", "params": {"level": 3}, "instances": 5}]})
    run_plan(plan, tmp_path / "run")
    from harness._store import load_run

    load_run(tmp_path / "run")  # writes the Parquet exports
    episodes = pl.read_parquet(tmp_path / "run" / "episodes.parquet")
    bfs = episodes.filter(pl.col("agent") == "bfs")
    assert bfs.height == 15 and (bfs["final_regret"] == 0).all() and (bfs["total_reward"] == 1).all()
    decisions = pl.read_parquet(tmp_path / "run" / "decisions.parquet").filter(pl.col("agent") == "random-walk")
    outcomes = {json.loads(f)["outcome"] for f in decisions["feedback"]}
    assert outcomes <= {SHORTEST, LONGER, WRONG_ENDPOINTS}  # a simple walk never uses a non-edge


def test_untrained_graph_policy_is_a_uniform_walk_and_fit_changes_it(tmp_path):
    pytest.importorskip("torch")
    import polars as pl

    from agents import AgentSpec, resolve
    from finetune.iterate import IterateConfig, iterate
    from harness._plan import parse_suite

    suite = parse_suite({"agents": [], "scenarios": [
        {"id": "g", "family": "graph/shortest-path", "params": {"level": 1}, "instances": 4}]})
    config = IterateConfig(out=str(tmp_path / "loop"), suite=suite, selector="threshold", iterations=1, rollouts=8,
                           eval_instances=3, backend_config={"epochs": 3, "learning_rate": 0.01})
    result = iterate(config)
    from scenarios import make

    env = make("graph/shortest-path", {"level": 1}, 3)
    observation = env.reset(0)
    agent = resolve(AgentSpec(f"torch:{tmp_path}/loop/iter-000/checkpoint"))()
    from agents import EpisodeInfo

    agent.reset(EpisodeInfo("graph/shortest-path", "answer", "answer", env.n_actions, 1, False, "t", "s", 0, 7))
    decision = agent.decide(observation)
    neighbours = observation.problem.graph.neighbours()
    path = decision.info["path"]
    assert decision.answer == observation.path_text(path)  # answered as text in the framing's node names
    expected = sum(math.log(1 / len([v for v in neighbours[u] if v not in path[:j + 1]]))
                   for j, u in enumerate(path[:-1]))
    assert decision.info["log_prob"] == pytest.approx(expected, abs=1e-3)  # exactly uniform over unvisited neighbours
    trained = resolve(AgentSpec(result.checkpoint.agent))()
    trained.reset(EpisodeInfo("graph/shortest-path", "answer", "answer", env.n_actions, 1, False, "t", "s", 0, 7))
    assert trained.decide(observation).info["log_prob"] != decision.info["log_prob"]
    kept = pl.read_parquet(tmp_path / "loop" / "iter-000" / "dataset" / "episodes.parquet")
    assert (kept["final_regret"] == 0).all() and kept.height > 0


def test_a_language_model_answers_graph_questions_through_litellm(tmp_path, monkeypatch):
    """The question reaches a model as a conversation; its ANSWER line is checked as a path."""
    from harness import load_run, parse_suite, run_plan
    from harness.testing.openai_server import ScriptedServer
    from scenarios import make

    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))
    seeds = (4, 5, 6)
    replies = {}  # question -> reply: a shortest path for seeds 4 and 5, a non-edge hop for seed 6
    for seed in seeds:
        env = make("graph/shortest-path", {"level": 2}, seed)
        observation = env.reset(0)
        problem = observation.problem
        parent, queue = {problem.source: problem.source}, [problem.source]
        neighbours = problem.graph.neighbours()
        for u in queue:  # breadth-first: the list grows while it is read
            for v in neighbours[u]:
                if v not in parent:
                    parent[v] = u
                    queue.append(v)
        path = [problem.target]
        while path[-1] != problem.source:
            path.append(parent[path[-1]])
        path = path[::-1] if seed != 6 else [problem.source, problem.target]
        replies[observation.messages[0]["content"]] = f"Let me trace it.\nANSWER: {observation.path_text(path)}"

    def policy(messages, request):
        return replies[next(m["content"] for m in messages if m["role"] == "user")]

    with ScriptedServer(policy) as server:
        plan = parse_suite({"seed": 0, "rollouts": 1,
                            "agents": [{"agent": "openai/scripted", "api_base": server.api_base, "backoff_base": 0.01}],
                            "scenarios": [{"id": "g", "family": "graph/shortest-path", "params": {"level": 2},
                                           "seeds": list(seeds)}]})
        result = run_plan(plan, tmp_path / "run")
    assert result.failed == 0 and result.finished == 3
    decisions, episodes = load_run(tmp_path / "run")
    rows = {r["task_id"]: r for r in decisions.collect().to_dicts()}
    assert all(r["parse_status"] == "ok" and " -> " in r["answer"] for r in rows.values())
    regret = {r["task_id"]: r["final_regret"] for r in episodes.collect().to_dicts()}
    assert regret["g#4"] == regret["g#5"] == 0.0
    assert regret["g#6"] > 0  # source -> target directly is not an edge at level 2 (distance 3)
