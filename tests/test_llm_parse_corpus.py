"""The answer parser against a corpus of model replies in the forms real models write
(tests/data/parser_corpus.jsonl, written by tests/data/make_parser_corpus.py): at least 300
replies in at least 60 formats, valid and invalid, bandit and experts, each with the reading a
careful human gives it. At least 99% must be read as intended and none silently misread (a
valid status with a different decision, or an ambiguous/invalid reply accepted)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from agents.llm import parse_answer
from scenarios.framing import get_framing

CORPUS = Path(__file__).with_name("data") / "parser_corpus.jsonl"


def load():
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


def reading(row):
    """'right', 'misread' (ok with another decision, or an invalid reply accepted) or 'rejected'."""
    parsed = parse_answer(row["reply"], get_framing(row["framing"]), row["n"], row["policy"])
    expect = row["expect"]
    if "invalid" in expect:
        return ("right" if not parsed.ok else "misread"), parsed
    if not parsed.ok:
        return "rejected", parsed
    if "action" in expect:
        same = parsed.policy is None and parsed.action == expect["action"]
        if parsed.policy is not None:  # a one-hot distribution is the same decision
            same = parsed.policy[expect["action"]] == pytest.approx(1.0)
    else:
        same = parsed.policy is not None and list(parsed.policy) == pytest.approx(expect["policy"], abs=1e-3)
    return ("right" if same else "misread"), parsed


def summary():
    rows = load()
    outcomes = Counter()
    wrong = []
    for row in rows:
        outcome, parsed = reading(row)
        outcomes[outcome] += 1
        if outcome != "right":
            wrong.append((outcome, row["format"], row["reply"], parsed))
    return rows, outcomes, wrong


def test_corpus_size_and_coverage():
    rows = load()
    formats = {r["format"] for r in rows}
    assert len(rows) >= 300 and len(formats) >= 60
    assert {r["policy"] for r in rows} == {True, False}
    assert sum("invalid" in r["expect"] for r in rows) >= 100


def test_at_least_99_percent_read_as_intended_and_no_silent_misread():
    rows, outcomes, wrong = summary()
    detail = "\n".join(f"{o}: [{f}] {r!r} -> {p.action} {p.policy} {p.error}" for o, f, r, p in wrong)
    assert outcomes["misread"] == 0, detail
    assert outcomes["right"] / len(rows) >= 0.99, detail


if __name__ == "__main__":  # the figures for a report
    rows, outcomes, wrong = summary()
    valid = [r for r in rows if "invalid" not in r["expect"]]
    print(f"{len(rows)} replies, {len({r['format'] for r in rows})} formats "
          f"({len(valid)} valid, {len(rows) - len(valid)} invalid)")
    print(f"read as intended: {outcomes['right']}/{len(rows)} = {outcomes['right'] / len(rows):.2%}; "
          f"misread: {outcomes['misread']}; valid but rejected: {outcomes['rejected']}")
    for o, f, r, p in wrong:
        print(f"  {o}: [{f}] {r!r} -> action={p.action} policy={p.policy} error={p.error}")
