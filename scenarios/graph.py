"""Graph reasoning: shortest paths in seeded random connected graphs, with difficulty levels.

The pieces here need no agent: a generator, an exact checker, a parser of path answers from
real model output, natural-language posing through graph framings, and the "regret" used to
rank answers.

**Levels** (`generate_problem(level, rng)`): level d >= 1 draws 6+d to 10+d nodes, plants a
path of d + 1 edges between the source and the target, attaches the other nodes one by one
to a uniformly chosen node already in the tree (so the graph is connected), then adds each
other pair as an edge with probability `0.6 / (d + 1)` unless it would shorten the
source-target distance. So the shortest path has exactly d + 1 edges, harder levels have
longer paths in larger, sparser graphs, and extra edges often create several shortest paths
(any of them is correct). Nodes are relabelled by a random permutation, so neither the
planted path nor the source is recognisable by its index. Everything is drawn from the rng:
one seed and level always give the same graph.

**Outcomes** (`check_path`): `shortest` and `no-path` (the target is unreachable and the
answer says so) are correct; `longer` is a valid simple path that is not shortest; the
failures are `missed-path` (answered "no path" though one exists), `unknown-node`,
`wrong-endpoints`, `non-edge`, `repeated-node` and `unparseable`, checked in that order
after parsing.

**Regret** for ranking: 0 for a correct answer, the excess number of edges for a longer valid
path, and `n_nodes - 1` for any failure. A valid simple path has at most n - 1 edges, so its
excess is at most n - 1 - d < n - 1: every failure ranks below every valid path. Reward is
1 for a correct answer and 0 otherwise.

**Parsing** (`parse_path`): the text after the last `ANSWER:` (any case, also `**Answer:**`)
on its line, or the whole reply when it has none. Inside it, a path is a chain of node
names joined by one kind of separator: arrows (`->`, `→`, `=>`), dashes, commas, `to` /
`then`, or plain spaces; quotes, brackets and a node noun before a name ("city Paris")
are ignored, so JSON lists parse too. Trailing text ends the chain. Single-character names
(letters) must match exactly in case, except right after an arrow or dash; longer names match
in any case. Several different chains of two or more nodes, or separators of two kinds in
one chain, are ambiguous: the answer is unparseable, never guessed. A word that is not a node
name between or after arrows is an unknown node. "none", "no path" or "unreachable" with no
chain is the no-path answer.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scenarios._base import Observation, Scenario, ScenarioError, Step, require, scenario
from scenarios._spaces import FreeForm
from scenarios._registry import Registry

# --- graphs and their generator ----------------------------------------------------------


@dataclass(frozen=True)
class Graph:
    """An undirected simple graph on nodes 0..n_nodes-1; `edges` are sorted pairs (u < v)."""

    n_nodes: int
    edges: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if self.n_nodes < 1:
            raise ValueError(f"a graph needs at least one node, got {self.n_nodes}")
        canonical = tuple(sorted({(min(u, v), max(u, v)) for u, v in self.edges}))
        for u, v in canonical:
            if u == v or not (0 <= u < self.n_nodes and 0 <= v < self.n_nodes):
                raise ValueError(f"edge ({u}, {v}) is a loop or names a node outside 0..{self.n_nodes - 1}")
        object.__setattr__(self, "edges", canonical)

    def neighbours(self) -> list[list[int]]:
        adjacency: list[list[int]] = [[] for _ in range(self.n_nodes)]
        for u, v in self.edges:
            adjacency[u].append(v)
            adjacency[v].append(u)
        return [sorted(a) for a in adjacency]

    def has_edge(self, u: int, v: int) -> bool:
        return (min(u, v), max(u, v)) in set(self.edges)

    def distances(self, source: int) -> list[int | None]:
        """Breadth-first distances from `source` (None where unreachable)."""
        adjacency = self.neighbours()
        dist: list[int | None] = [None] * self.n_nodes
        dist[source] = 0
        queue = deque([source])
        while queue:
            u = queue.popleft()
            for v in adjacency[u]:
                if dist[v] is None:
                    dist[v] = dist[u] + 1  # type: ignore[operator]
                    queue.append(v)
        return dist

    def adjacency_matrix(self) -> np.ndarray:
        matrix = np.zeros((self.n_nodes, self.n_nodes), dtype=np.float32)
        for u, v in self.edges:
            matrix[u, v] = matrix[v, u] = 1.0
        return matrix


@dataclass(frozen=True)
class PathProblem:
    """A shortest-path question: the graph, its two endpoints and the exact distance."""

    graph: Graph
    source: int
    target: int

    @property
    def distance(self) -> int | None:
        return self.graph.distances(self.source)[self.target]


def level_template(level: int) -> tuple[int, int, float]:
    """(min nodes, max nodes, extra-edge probability) of a level (see the module docstring)."""
    if level < 1:
        raise ValueError(f"level must be >= 1, got {level}")
    return 6 + level, 10 + level, 0.6 / (level + 1)


def generate_problem(level: int, rng: np.random.Generator, *, min_nodes: int | None = None,
                     max_nodes: int | None = None, extra_edge_prob: float | None = None) -> PathProblem:
    """A connected graph whose source-target shortest path has exactly `level + 1` edges."""
    low, high, prob = level_template(level)
    low, high = min_nodes or low, max_nodes or high
    prob = prob if extra_edge_prob is None else extra_edge_prob
    length = level + 1
    if not length + 1 <= low <= high:
        raise ValueError(f"level {level} needs at least {length + 1} nodes, got {low}..{high}")
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"extra_edge_prob must be in [0, 1], got {prob}")
    n = int(rng.integers(low, high + 1))
    edges = {(i, i + 1) for i in range(length)}  # planted path 0 - 1 - ... - length
    for node in range(length + 1, n):
        edges.add((int(rng.integers(node)), node))
    source, target = 0, length
    others = [(u, v) for u in range(n) for v in range(u + 1, n) if (u, v) not in edges]
    order = rng.permutation(len(others))
    coins = rng.random(len(others))
    graph = Graph(n, tuple(edges))
    from_source, to_target = graph.distances(source), graph.distances(target)
    for index in order:
        if coins[index] >= prob:
            continue
        u, v = others[index]
        # the new edge keeps d(source, target) iff neither direction makes a shortcut
        if min(from_source[u] + 1 + to_target[v], from_source[v] + 1 + to_target[u]) < length:  # type: ignore[operator]
            continue
        edges.add((u, v))
        graph = Graph(n, tuple(edges))
        from_source, to_target = graph.distances(source), graph.distances(target)
    relabel = rng.permutation(n)
    graph = Graph(n, tuple((int(relabel[u]), int(relabel[v])) for u, v in edges))
    return PathProblem(graph, int(relabel[source]), int(relabel[target]))


# --- checking ------------------------------------------------------------------------------

SHORTEST, NO_PATH, LONGER = "shortest", "no-path", "longer"
MISSED_PATH, UNKNOWN_NODE, WRONG_ENDPOINTS = "missed-path", "unknown-node", "wrong-endpoints"
NON_EDGE, REPEATED_NODE, UNPARSEABLE = "non-edge", "repeated-node", "unparseable"
CORRECT_OUTCOMES = frozenset({SHORTEST, NO_PATH})
OUTCOMES = (SHORTEST, NO_PATH, LONGER, MISSED_PATH, UNKNOWN_NODE, WRONG_ENDPOINTS, NON_EDGE, REPEATED_NODE,
            UNPARSEABLE)


@dataclass(frozen=True)
class PathAnswer:
    """A parsed answer: node indices (-1 for a name that is no node), or the no-path claim, or neither."""

    nodes: tuple[int, ...] | None = None
    no_path: bool = False
    unknown: tuple[str, ...] = ()  # names that matched no node
    error: str | None = None  # why nothing could be read

    @property
    def parsed(self) -> bool:
        return self.nodes is not None or self.no_path


@dataclass(frozen=True)
class PathCheck:
    outcome: str
    regret: float
    reward: float
    detail: str  # one line naming what is wrong (or right)
    answer: tuple[int, ...] | int | None = None  # what was read: node indices (or the length asked for)

    @property
    def correct(self) -> bool:
        return self.outcome in CORRECT_OUTCOMES


def failure_regret(problem: PathProblem) -> float:
    return float(problem.graph.n_nodes - 1)


def check_path(problem: PathProblem, answer: PathAnswer | Sequence[int] | None) -> PathCheck:
    """Score an answer exactly; any valid shortest path is correct (see the module docstring)."""
    if answer is None:
        answer = PathAnswer(error="no answer")
    elif not isinstance(answer, PathAnswer):
        answer = PathAnswer(nodes=tuple(int(x) for x in answer))
    distance = problem.distance
    worst = failure_regret(problem)

    def fail(outcome: str, detail: str) -> PathCheck:
        return PathCheck(outcome, worst, 0.0, detail)

    if not answer.parsed:
        return fail(UNPARSEABLE, answer.error or "no path could be read from the answer")
    if answer.no_path:
        if distance is None:
            return PathCheck(NO_PATH, 0.0, 1.0, "the target is unreachable, as answered")
        return fail(MISSED_PATH, f"answered that there is no path, but one of {distance} edges exists")
    nodes = answer.nodes or ()
    n = problem.graph.n_nodes
    bad = [x for x in nodes if not 0 <= x < n]
    if bad or answer.unknown:
        names = ", ".join(repr(u) for u in answer.unknown) or ", ".join(str(b) for b in bad)
        return fail(UNKNOWN_NODE, f"the path names {names}, which is not a node of the graph")
    if not nodes or nodes[0] != problem.source or nodes[-1] != problem.target:
        return fail(WRONG_ENDPOINTS, f"the path must go from node {problem.source} to node {problem.target}, "
                                     f"got {list(nodes)}")
    for u, v in zip(nodes, nodes[1:]):
        if not problem.graph.has_edge(u, v):
            return fail(NON_EDGE, f"there is no edge between nodes {u} and {v}")
    if len(set(nodes)) != len(nodes):
        return fail(REPEATED_NODE, "the path visits a node twice (not a simple path)")
    excess = len(nodes) - 1 - (distance or 0)
    if excess == 0:
        return PathCheck(SHORTEST, 0.0, 1.0, f"a shortest path ({distance} edges)")
    return PathCheck(LONGER, float(excess), 0.0, f"a valid path of {len(nodes) - 1} edges; the shortest has {distance}")


# --- parsing answers ---------------------------------------------------------------------

ANSWER_PREFIX = "ANSWER:"
_ANSWER = re.compile(r"answer\W{0,3}:", re.IGNORECASE)
_TOKENS = re.compile(r"""
    (?P<arrow>[-–—=]+>|→|⟶|⇒|➔|➜)
  | (?P<dash>[-–—]+)
  | (?P<comma>,)
  | (?P<word>[^\W_]+)
  | (?P<quote>["'`*])
  | (?P<space>\s+)
  | (?P<stop>.)
""", re.VERBOSE)
_WORD_SEPARATORS = {"to": "to", "then": "to", "and": "comma"}
_STRONG = {"arrow", "dash"}
_NO_PATH = re.compile(r"\b(?:none|no\s+(?:such\s+)?path|unreachable|not\s+reachable|impossible|no\s+route)\b",
                      re.IGNORECASE)


def answer_segment(text: str) -> str:
    """The text after the last `ANSWER:` on its line (the next line if that is empty), or all of it."""
    matches = list(_ANSWER.finditer(text))
    if not matches:
        return text
    rest = text[matches[-1].end():]
    lines = rest.split("\n")
    first = lines[0].strip(" *`")
    if first:
        return lines[0]
    return next((line for line in lines[1:] if line.strip(" *`")), "")


def parse_path(text: str, names: Sequence[str], noun_words: Sequence[str] = ("node",)) -> PathAnswer:
    """Read a path (node indices into `names`) from a reply; see the module docstring for the rules."""
    if not isinstance(text, str) or not text.strip():
        return PathAnswer(error="empty answer")
    segment = answer_segment(text)
    exact = {name: i for i, name in enumerate(names)}
    folded = {name.casefold(): i for i, name in enumerate(names) if len(name) > 1}
    letters = {name.casefold(): i for i, name in enumerate(names) if len(name) == 1}
    nouns = {w.casefold() for w in noun_words}

    def lookup(word: str, after_strong: bool) -> int | None:
        if word in exact:
            return exact[word]
        key = word.casefold()
        if key in folded:
            return folded[key]
        return letters.get(key) if after_strong else None

    tokens = [(m.lastgroup, m.group()) for m in _TOKENS.finditer(segment) if m.lastgroup != "quote"]
    chains: list[list[int]] = []
    unknown: list[str] = []
    mixed = False
    chain: list[int] = []
    chain_kind: str | None = None
    pending: str | None = None  # the separator seen since the last node of the chain

    def close() -> None:
        nonlocal chain, chain_kind, pending
        if len(chain) >= 2:
            chains.append(chain)
        chain, chain_kind, pending = [], None, None

    for position, (kind, value) in enumerate(tokens):
        if kind == "space":
            if chain and pending is None:
                pending = "space"
            continue
        if kind in ("arrow", "dash", "comma") or (kind == "word" and value.casefold() in _WORD_SEPARATORS and chain):
            if not chain:
                continue
            sep = kind if kind != "word" else _WORD_SEPARATORS[value.casefold()]
            if pending not in (None, "space") and pending != sep:
                close()  # two separators in a row ("A, -> B"): nothing sensible
                continue
            pending = sep
            continue
        if kind == "word":
            index = lookup(value, pending in _STRONG or _next_kind(tokens, position) in _STRONG)
            if index is None and value.casefold() in nouns and _next_word_is_node(tokens, position, lookup):
                continue  # "node A", "city Paris": the noun is transparent
            if index is None:
                # after an arrow or dash the word must be a node: an unknown one, not trailing text
                if chain and pending in _STRONG and (chain_kind in (None, pending)):
                    unknown.append(value)
                    chain.append(-1)
                    chain_kind = pending
                    pending = None
                    continue
                close()
                continue
            if not chain:
                chain = [index]
                continue
            if pending is None or (pending == "space" and chain_kind not in (None, "space")):
                close()  # "A -> B -> C I think": a new word after the chain is trailing text
                chain = [index]
                continue
            if chain_kind is None:
                chain_kind = pending
            elif pending != chain_kind:
                mixed = True
                close()
                chain = [index]
                continue
            chain.append(index)
            pending = None
            continue
        close()  # any other punctuation ends a chain
    close()
    distinct = {tuple(c) for c in chains}
    if mixed:
        return PathAnswer(error="the answer mixes separators (e.g. arrows and commas); write one path")
    if len(distinct) > 1:
        return PathAnswer(error=f"the answer contains {len(distinct)} different paths; give exactly one")
    if distinct:
        nodes = distinct.pop()
        return PathAnswer(nodes=nodes, unknown=tuple(dict.fromkeys(unknown)))
    if _NO_PATH.search(segment):
        return PathAnswer(no_path=True)
    single = [lookup(v, False) for k, v in tokens if k == "word"]
    named = [i for i in single if i is not None]
    if len(named) == 1 and len(single) == 1:
        return PathAnswer(nodes=(named[0],))  # a lone node name: parsed, and wrong at the endpoints
    return PathAnswer(error="no path of node names found (expected e.g. 'ANSWER: A -> B -> C')")


def _next_kind(tokens, position: int) -> str | None:
    return next((kind for kind, _ in tokens[position + 1:] if kind != "space"), None)


def _next_word_is_node(tokens, position: int, lookup) -> bool:
    for kind, value in tokens[position + 1:]:
        if kind == "space":
            continue
        return kind == "word" and lookup(value, True) is not None
    return False


def parse_length(text: str) -> int | None:
    """An integer answer (the path length): exactly one integer after `ANSWER:`, else None."""
    if not isinstance(text, str):
        return None
    numbers = re.findall(r"(?<![\w.])-?\d+(?!\w|\.\d)", answer_segment(text))
    return int(numbers[0]) if len(set(numbers)) == 1 else None


# --- posing in natural language ----------------------------------------------------------


@dataclass(frozen=True)
class GraphFraming:
    """How a graph problem is told: node names, nouns, and edge-list or adjacency text."""

    @property
    def help(self) -> str:  # the registry listing's line
        return f"{self.node_plural} joined by {self.edge_plural}, told as {'an edge list' if self.style == 'edges' else 'adjacency lines'}"

    name: str
    setting: str  # the opening sentence
    node_noun: str  # "city"
    node_plural: str  # "cities"
    edge_noun: str  # "road"
    edge_plural: str  # "roads"
    node_labels: tuple[str, ...]
    style: str = "edges"  # "edges": one line listing every edge; "adjacency": one line per node
    adjacency_verb: str = "is connected to"  # "Alice knows: Bob, Carol" style lines use this verb
    fallback_label: str = "N{n}"  # names past the labels; {n} is the 1-based index

    def __post_init__(self) -> None:
        if self.style not in ("edges", "adjacency"):
            raise ValueError(f"graph framing {self.name!r}: style must be 'edges' or 'adjacency'")
        if len({label.casefold() for label in self.node_labels}) != len(self.node_labels):
            raise ValueError(f"graph framing {self.name!r}: node labels must be distinct")
        for label in self.node_labels:
            if not re.fullmatch(r"[^\W_]+", label):
                raise ValueError(f"graph framing {self.name!r}: node label {label!r} must be one word")

    def node_names(self, n: int) -> list[str]:
        return [self.node_labels[i] if i < len(self.node_labels) else self.fallback_label.format(n=i + 1)
                for i in range(n)]

    def graph_text(self, graph: Graph) -> str:
        names = self.node_names(graph.n_nodes)
        if self.style == "edges":
            listed = ", ".join(f"{names[u]} - {names[v]}" for u, v in graph.edges)
            return f"The {self.edge_plural} (each one goes both ways): {listed}."
        lines = [f"{names[u]} {self.adjacency_verb}: {', '.join(names[v] for v in near)}."
                 for u, near in enumerate(graph.neighbours()) if near]
        return "\n".join(lines)

    def describe(self, problem: PathProblem, ask: str = "path") -> str:
        """The whole question (no hidden fact: the distance is never shown)."""
        names = self.node_names(problem.graph.n_nodes)
        source, target = names[problem.source], names[problem.target]
        question = (f"What is a shortest path from {source} to {target}, i.e. one using the fewest {self.edge_plural}?"
                    if ask == "path" else
                    f"How many {self.edge_plural} does a shortest path from {source} to {target} use?")
        return "\n".join([
            f"{self.setting} There are {problem.graph.n_nodes} {self.node_plural}: {', '.join(names)}.",
            self.graph_text(problem.graph), question])

    def path_text(self, problem: PathProblem, nodes: Sequence[int]) -> str:
        """An answer as the model is asked to write it ("A -> C -> F"); -1 (unknown) as '?'."""
        names = self.node_names(problem.graph.n_nodes)
        return " -> ".join(names[i] if 0 <= i < len(names) else "?" for i in nodes)

    def parse(self, problem: PathProblem, text: str) -> PathAnswer:
        return parse_path(text, self.node_names(problem.graph.n_nodes), (self.node_noun, "node"))


GRAPH_FRAMINGS: Registry[GraphFraming] = Registry("graph framing", "regret_harness.graph_framings")


def register_graph_framing(framing: GraphFraming) -> GraphFraming:
    return GRAPH_FRAMINGS.register(framing.name)(framing)


def get_graph_framing(name: str | GraphFraming) -> GraphFraming:
    return name if isinstance(name, GraphFraming) else GRAPH_FRAMINGS.get(name)


_CITIES = ("Amber", "Brookfield", "Cedarville", "Dunmore", "Eastwick", "Fairhaven", "Glenrock", "Harwick",
           "Ironwood", "Juniper", "Kingsbridge", "Lakemont", "Maplewood", "Northgate", "Oakridge", "Pinecrest",
           "Queensbury", "Riverton", "Stonehill", "Thornbury", "Upton", "Valemont", "Westfield", "Yarrow",
           "Zephyr", "Ashford")
_PEOPLE = ("Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko",
           "Liam", "Maya", "Nikolai", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
           "Wendy", "Xavier", "Yusuf", "Zoe")

for _framing in (
    GraphFraming(name="letters", setting="Consider an undirected graph.", node_noun="node", node_plural="nodes",
                 edge_noun="edge", edge_plural="edges", node_labels=tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")),
    GraphFraming(name="cities", setting="A country's towns are linked by two-way roads.", node_noun="town",
                 node_plural="towns", edge_noun="road", edge_plural="roads", node_labels=_CITIES),
    GraphFraming(name="friends", setting="In a small club, some members know each other (knowing is mutual); "
                 "a message can only be passed between people who know each other.", node_noun="person",
                 node_plural="people", edge_noun="hand-over", edge_plural="hand-overs", node_labels=_PEOPLE,
                 style="adjacency", adjacency_verb="knows"),
):
    register_graph_framing(_framing)
del _framing


# --- the scenario family -----------------------------------------------------------------

ASKS = ("path", "length")


@dataclass(frozen=True, slots=True)
class ProblemObservation(Observation):
    """The single observation of a graph task: the public problem (graph, source, target) and the
    framing's node names, so a numeric agent can answer in the words a reply would use."""

    problem: PathProblem | None = None
    names: tuple[str, ...] = ()

    def path_text(self, nodes: Sequence[int]) -> str:
        """A node sequence written as the model is asked to write it: "A -> C -> F"."""
        return " -> ".join(self.names[i] for i in nodes)


@scenario("graph/shortest-path")
class ShortestPath(Scenario):
    """One question per episode: a shortest path (or its length) between two nodes.

    The answer is free-form: reply text (parsed with the framing's node names; the numeric agents
    answer this way too) or the path as a sequence of node indices (an int for `ask = "length"`).
    `step` returns reward 1 / 0 and the ranking regret of the module docstring; its feedback
    records the outcome, the parsed path and a one-line detail.
    """

    kind = "answer"
    feedback = "answer"
    framed = False  # the scenario tells itself (describe()); the bandit framings do not apply

    @functools.cached_property
    def action_space(self) -> FreeForm:
        """Replies are read as text (the last ANSWER: line), then as a path (or a length) by `check`;
        numeric agents may also answer with the node sequence itself, which `step` checks directly."""
        if self.params.ask == "length":
            return FreeForm("number", example="3")
        names = self.framing.node_names(3)
        return FreeForm("path, its nodes in order from the start to the end separated by ' -> '",
                        example=" -> ".join(names))

    @dataclass(frozen=True)
    class Params:
        level: int = field(default=2, metadata={"help": "difficulty d >= 1: the shortest path has d + 1 edges"})
        min_nodes: int | None = field(default=None, metadata={"help": "fewest nodes (default 6 + level)"})
        max_nodes: int | None = field(default=None, metadata={"help": "most nodes (default 10 + level)"})
        extra_edge_prob: float | None = field(default=None, metadata={"help": "chance of each extra edge "
                                                                      "(default 0.6 / (level + 1))"})
        ask: str = field(default="path", metadata={"help": "'path' (the nodes) or 'length' (the edge count)"})
        names: str = field(default="letters", metadata={"help": "graph framing: letters, cities or friends"})

    @property
    def n_actions(self) -> int:
        return self.problem.graph.n_nodes

    @property
    def horizon(self) -> int:
        return 1

    def _validate(self) -> None:
        p = self.params
        require(p.level >= 1, self.family, f"level must be >= 1, got {p.level}")
        require(p.ask in ASKS, self.family, f"ask must be one of {', '.join(ASKS)}, got {p.ask!r}")
        try:
            self.framing = get_graph_framing(p.names)
        except KeyError as exc:
            raise ScenarioError(f"{self.family}: {exc}") from None

    def _build_world(self, rng):
        p = self.params
        try:
            self.problem = generate_problem(p.level, rng, min_nodes=p.min_nodes, max_nodes=p.max_nodes,
                                            extra_edge_prob=p.extra_edge_prob)
        except ValueError as exc:
            raise ScenarioError(f"{self.family}: {exc}") from None

    def _draw_episode(self, rng):
        pass  # nothing random happens after the instance is drawn

    def reset(self, seed: int) -> Observation:
        super().reset(seed)
        # language agents reply to the question itself: the framed graph plus the answer line's form
        question = f"{self.describe()}\n\n{self.action_space.instructions(None)}"
        return ProblemObservation(0, None, self.problem, tuple(self.framing.node_names(self.problem.graph.n_nodes)),
                                  messages=({"role": "user", "content": question},))

    def expected_rewards(self, t: int) -> np.ndarray:
        return np.zeros(self.n_actions)  # no discrete actions: answers are scored by `check`

    def optimal_action(self, t: int) -> int:
        return -1

    def _outcome(self, t, action, policy):  # unused: `step` scores answers itself
        raise ScenarioError(f"{self.family}: answer with a path, not an action index")

    def describe(self) -> str:
        """The question in the family's graph framing (the action space adds the answer line's form)."""
        return self.framing.describe(self.problem, self.params.ask)

    def check(self, answer) -> PathCheck:
        """Score reply text or a numeric agent's path / length; `.answer` holds what was read."""
        problem = self.problem
        if self.params.ask == "length":
            value = parse_length(answer) if isinstance(answer, str) else answer
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                right = int(value) == problem.distance
                return PathCheck(SHORTEST if right else LONGER, 0.0 if right else failure_regret(problem),
                                 1.0 if right else 0.0, f"answered {int(value)}, the distance is {problem.distance}",
                                 int(value))
            return PathCheck(UNPARSEABLE, failure_regret(problem), 0.0, "no single integer in the answer")
        parsed = self.framing.parse(problem, answer) if isinstance(answer, str) else (
            None if answer is None else PathAnswer(nodes=tuple(int(x) for x in answer)))
        result = check_path(problem, parsed)
        return dataclasses.replace(result, answer=parsed.nodes if parsed is not None else None)

    def step(self, action) -> Step:
        if not self._episode_ready:
            raise ScenarioError(f"{self.family}: call reset(seed) before step()")
        if self._t >= 1:
            raise ScenarioError(f"{self.family}: episode is over (one answer per episode)")
        if isinstance(action, (int, np.integer)) and self.params.ask == "path":
            raise ScenarioError(f"{self.family}: answer with a path (reply text or node indices), "
                                f"not the action index {action}")
        result = self.check(action)
        self._t = 1
        parsed = result.answer
        feedback = {"reward": result.reward, "outcome": result.outcome,
                    "answer": list(parsed) if isinstance(parsed, tuple) else parsed, "detail": result.detail}
        return Step(0, result.reward, result.regret, -1, feedback, True, None)

    def sample_action(self, rng: np.random.Generator) -> tuple[int, ...]:
        """A random reply (a checker plays these): 1 to n node indices, valid or not."""
        n = self.problem.graph.n_nodes
        return tuple(int(x) for x in rng.integers(n, size=int(rng.integers(1, n + 1))))

    def difficulty(self) -> dict[str, float]:
        return {"level": float(self.params.level), "distance": float(self.problem.distance or 0),
                "n_nodes": float(self.problem.graph.n_nodes)}

    def summary(self) -> dict:
        problem = self.problem
        return {"level": self.params.level, "n_nodes": problem.graph.n_nodes, "source": problem.source,
                "target": problem.target, "distance": problem.distance,
                "edges": [list(e) for e in problem.graph.edges]}
