"""Writes parser_corpus.jsonl: model replies in the forms real models produce, each with the reading
a careful human gives it. Run from the repository root: python tests/data/make_parser_corpus.py

Each line: {"format", "framing", "n", "policy" (the scenario accepts a distribution), "reply",
"expect"}; expect is {"action": i} (0-based option index), {"policy": [p, ...]} or
{"invalid": "why"} (no single valid decision can be read without guessing: the parser must
re-ask). The expectations come from what the reply means, never from what the parser does.
"""

import json
from pathlib import Path

# (framing, n, option names as the prompt lists them)
BUTTONS = ("buttons", 3, ["blue", "green", "red"])
BUTTONS5 = ("buttons", 5, ["blue", "green", "red", "yellow", "purple"])
SLOTS = ("slot-machines", 3, ["A", "B", "C"])
FOOD = ("restaurants", 3, ["Golden Dragon", "Bella Napoli", "Le Petit Bistro"])
ADS = ("ad-placement", 4, ["top banner", "left sidebar", "right sidebar", "footer"])
TRIAL = ("clinical-trial", 3, ["Alvera", "Brenix", "Corvane"])
NUMERIC = ("numeric", 4, ["1", "2", "3", "4"])
FRAMINGS = [BUTTONS, BUTTONS5, SLOTS, FOOD, ADS, TRIAL]

rows = []


def add(fmt, framing, reply, expect, policy=False):
    name, n, _ = framing
    rows.append({"format": fmt, "framing": name, "n": n, "policy": policy, "reply": reply, "expect": expect})


def valid(fmt, template, framings=FRAMINGS, picks=(0, 2), policy=False):
    """One reply per (framing, pick): `template` is formatted with the option name and a rival name."""
    for framing in framings:
        names = framing[2]
        for pick in picks:
            if pick >= len(names):
                continue
            rival = names[(pick + 1) % len(names)]
            add(fmt, framing, template.format(name=names[pick], rival=rival, pos=pick + 1), {"action": pick}, policy)


def invalid(fmt, template, why, framings=FRAMINGS, picks=(0,), policy=False):
    for framing in framings:
        names = framing[2]
        for pick in picks:
            rival = names[(pick + 1) % len(names)]
            add(fmt, framing, template.format(name=names[pick], rival=rival, pos=pick + 1), {"invalid": why}, policy)


R = "The {rival} option has a lower average so far, so I will go with the better one."

# --- one option, in the forms models write -------------------------------------------------
valid("plain", R + "\nANSWER: {name}")
valid("lowercase-label", "answer: {name}", framings=[BUTTONS, FOOD])
for framing in (BUTTONS, FOOD):
    for pick in (0, 2):
        add("uppercase-name", framing, f"ANSWER: {framing[2][pick].upper()}", {"action": pick})
valid("bold-label", R + "\n\n**ANSWER:** {name}")
valid("bold-whole-line", R + "\n\n**ANSWER: {name}**", framings=[BUTTONS, FOOD, TRIAL])
valid("bold-value", "ANSWER: **{name}**", framings=[BUTTONS, ADS])
valid("trailing-sentence", "ANSWER: {name}. It has the best average so far.")
valid("trailing-dash", "ANSWER: {name} - it has the highest mean reward", framings=[BUTTONS, FOOD, SLOTS])
valid("trailing-paren", "ANSWER: {name} (exploring: it was tried only once)", framings=[BUTTONS, TRIAL, ADS])
valid("trailing-because", "ANSWER: {name}, because it has paid off most often", framings=[BUTTONS, FOOD, SLOTS])
valid("typographic-double", "ANSWER: \u201c{name}\u201d", framings=[BUTTONS, FOOD, SLOTS])
valid("typographic-single", "ANSWER: \u2018{name}\u2019", framings=[BUTTONS, TRIAL])
valid("backticks", "ANSWER: `{name}`", framings=[BUTTONS, ADS])
valid("angle-brackets", "ANSWER: <{name}>", framings=[BUTTONS, SLOTS, FOOD])
valid("square-brackets", "ANSWER: [{name}]", framings=[BUTTONS, TRIAL])
valid("next-line", "ANSWER:\n\n{name}", framings=[BUTTONS, FOOD])
valid("answer-twice-same", R + "\nANSWER: {name}\n\nANSWER: {name}", framings=[BUTTONS, SLOTS])
valid("final-answer-heading-bold", R + "\n\n### Final Answer\n\n**{name}**")
valid("final-answer-heading-inline", R + "\n\n## Final Answer: {name}", framings=[BUTTONS, FOOD, ADS])
valid("final-answer-bold-label", R + "\n\n**Final Answer:** {name}", framings=[BUTTONS, TRIAL])
valid("final-answer-is-colon", R + "\n\nThe final answer is: {name}")
valid("final-answer-is-plain", R + " The final answer is {name}.", framings=[BUTTONS, FOOD, SLOTS])
valid("final-answer-is-bold", R + "\n\nMy final answer is **{name}**.", framings=[BUTTONS, ADS])
valid("answer-tag", R + "\n<answer>{name}</answer>")
valid("answer-tag-multiline", "<answer>\n{name}\n</answer>", framings=[BUTTONS, FOOD])
valid("boxed-text", R + "\n\n$\\boxed{{\\text{{{name}}}}}$")
valid("boxed-name", "\\boxed{{{name}}}", framings=[BUTTONS, FOOD, SLOTS])
valid("boxed-position", R + "\n\n\\boxed{{{pos}}}", framings=[BUTTONS, BUTTONS5, SLOTS, FOOD])
valid("display-boxed", "So the choice is\n\\[\n\\boxed{{\\text{{{name}}}}}\n\\]", framings=[BUTTONS, TRIAL])
valid("position-number", "ANSWER: {pos}", framings=[BUTTONS, SLOTS, FOOD, NUMERIC])
valid("position-hash", "ANSWER: #{pos}", framings=[BUTTONS, NUMERIC])
valid("position-option", "ANSWER: option {pos}", framings=[BUTTONS, FOOD])
valid("noun-phrase", "ANSWER: the {name} button", framings=[BUTTONS, BUTTONS5])
valid("noun-phrase-slot", "ANSWER: slot machine {name}", framings=[SLOTS])
valid("noun-phrase-treatment", "ANSWER: treatment {name}", framings=[TRIAL])
valid("verb-phrase", "ANSWER: I'll go with {name}", framings=[BUTTONS, FOOD, SLOTS])
valid("exclamation", "ANSWER: {name}!", framings=[BUTTONS, FOOD])
valid("emoji-before", "ANSWER: \U0001F535 {name}", framings=[BUTTONS, FOOD])
valid("emoji-after", R + "\nANSWER: {name} \u2705", framings=[BUTTONS, SLOTS, TRIAL])
valid("emoji-label", "\U0001F3AF ANSWER: {name}", framings=[BUTTONS, ADS])
valid("zero-width-space", "ANSWER:\u200b {name}\u200b", framings=[BUTTONS, FOOD, SLOTS])
valid("zero-width-joiner-bom", "\ufeffANSWER: {name}\u2060", framings=[BUTTONS, TRIAL])
valid("full-width-colon", "ANSWER\uff1a{name}", framings=[BUTTONS, FOOD, SLOTS])
valid("full-width-colon-space", R + "\nANSWER\uff1a {name}", framings=[BUTTONS, ADS])
valid("nbsp", "ANSWER:\u00a0{name}", framings=[BUTTONS, FOOD])
valid("think-closed", "<think>\n{rival} looked good early, but {name} has the better mean.\n</think>\n\nANSWER: {name}")
valid("think-orphan-close", "{rival} has been unlucky; {name} is ahead.\n</think>\n\nANSWER: {name}", framings=[BUTTONS, FOOD, SLOTS])
valid("think-unclosed-then-answer", "<think>\nComparing the averages, {name} is ahead of {rival}.\nANSWER: {name}", framings=[BUTTONS, FOOD, SLOTS, TRIAL])
valid("thinking-tag", "<thinking>{name} is best.</thinking>\nANSWER: {name}", framings=[BUTTONS, ADS])
valid("json-object", '{{"answer": "{name}"}}', framings=[BUTTONS, FOOD, SLOTS])
valid("json-with-reasoning", '{{"reasoning": "{rival} is worse", "answer": "{name}"}}', framings=[BUTTONS, TRIAL])
valid("json-fenced-reply", '```json\n{{\n  "reasoning": "{name} is best",\n  "answer": "{name}"\n}}\n```', framings=[BUTTONS, FOOD])
valid("json-after-answer-fenced", R + '\nANSWER:\n```json\n{{"answer": "{name}"}}\n```', framings=[BUTTONS, FOOD, SLOTS])
valid("json-after-answer-pretty", R + '\nANSWER: {{\n  "answer": "{name}"\n}}', framings=[BUTTONS, ADS, TRIAL])
valid("json-position", '{{"choice": {pos}}}', framings=[BUTTONS, SLOTS])
valid("code-fence-line", "```\nANSWER: {name}\n```", framings=[BUTTONS, FOOD])
valid("blockquote", "> **ANSWER:** {name}", framings=[BUTTONS, SLOTS])
valid("list-item", R + "\n- ANSWER: {name}", framings=[BUTTONS, FOOD])
valid("answer-equals", "Final answer = {name}", framings=[BUTTONS, TRIAL])
valid("reasoning-names-rival", "Although {rival} did well once, I prefer the steadier one.\nANSWER: {name}")
valid("explanation-after-line", "ANSWER: {name}\n\nExplanation: {rival} has a lower mean, so {name} is the better bet.", framings=[BUTTONS, FOOD, SLOTS])
valid("bare-name", "{name}", framings=[BUTTONS, FOOD, SLOTS, TRIAL])
valid("bare-name-period", "{name}.", framings=[BUTTONS, ADS])
valid("template-then-answer", "ANSWER: <button name>\nANSWER: {name}", framings=[BUTTONS])

# --- distributions (experts) ---------------------------------------------------------------
EXPERTS = [BUTTONS, SLOTS, FOOD, TRIAL]


def dist(fmt, render, probs, framings=EXPERTS):
    for framing in framings:
        names = framing[2][:3]
        add(fmt, framing, render(names, probs), {"policy": list(probs)}, policy=True)


P1, P2, P3 = (0.5, 0.3, 0.2), (0.6, 0.4, 0.0), (0.2, 0.2, 0.6)
for probs in (P1, P2):
    dist("vector-json-list", lambda n, p: f"ANSWER: {json.dumps(list(p))}", probs)
    dist("vector-tuple", lambda n, p: "ANSWER: (" + ", ".join(str(x) for x in p) + ")", probs)
    dist("vector-space-separated", lambda n, p: "ANSWER: " + " ".join(str(x) for x in p), probs)
    dist("vector-comma-bare", lambda n, p: "ANSWER: " + ", ".join(str(x) for x in p), probs)
    dist("vector-percent-list", lambda n, p: "ANSWER: [" + ", ".join(f"{round(x * 100)}%" for x in p) + "]", probs)
    dist("named-json", lambda n, p: "ANSWER: " + json.dumps(dict(zip(n, p))), probs)
    dist("named-colon-pairs", lambda n, p: "ANSWER: " + ", ".join(f"{a}: {x}" for a, x in zip(n, p) if x), probs)
    dist("named-dash-pairs", lambda n, p: "ANSWER: " + ", ".join(f"{a} - {x}" for a, x in zip(n, p) if x), probs)
    dist("named-paren-pairs", lambda n, p: "ANSWER: " + ", ".join(f"{a} ({x})" for a, x in zip(n, p) if x), probs)
    dist("named-equals-pairs", lambda n, p: "ANSWER: " + ", ".join(f"{a}={x}" for a, x in zip(n, p) if x), probs)
    dist("named-semicolon-pairs", lambda n, p: "ANSWER: " + "; ".join(f"{a}: {x}" for a, x in zip(n, p) if x), probs)
    dist("named-percent-pairs", lambda n, p: "ANSWER: " + ", ".join(f"{a}: {round(x * 100)}%" for a, x in zip(n, p) if x), probs)
    dist("named-list-lines", lambda n, p: "ANSWER:\n" + "\n".join(f"- {a}: {x}" for a, x in zip(n, p)), probs)
    dist("probabilities-object", lambda n, p: json.dumps({"probabilities": dict(zip(n, p))}), probs)
    dist("fenced-pretty-json", lambda n, p: "ANSWER:\n```json\n" + json.dumps(dict(zip(n, p)), indent=2) + "\n```", probs)
dist("vector-fractions", lambda n, p: "ANSWER: [1/2, 1/3, 1/6]", (1 / 2, 1 / 3, 1 / 6))
dist("vector-fractions-bare", lambda n, p: "ANSWER: 1/4, 1/4, 1/2", (0.25, 0.25, 0.5))
dist("named-fraction-pairs", lambda n, p: f"ANSWER: {n[0]}: 1/2, {n[1]}: 1/4, {n[2]}: 1/4", (0.5, 0.25, 0.25))
dist("named-and-pairs", lambda n, p: f"ANSWER: {n[0]}: 0.7 and {n[2]}: 0.3", (0.7, 0.0, 0.3))
dist("percent-name-pairs", lambda n, p: f"ANSWER: 60% {n[0]}, 40% {n[1]}", (0.6, 0.4, 0.0))
dist("boxed-vector", lambda n, p: "\\boxed{[0.2, 0.2, 0.6]}", P3)
dist("vector-thirds-rounded", lambda n, p: "Hedging evenly.\nANSWER: [0.33, 0.33, 0.34]", (0.33, 0.33, 0.34))
for framing in EXPERTS:  # a single option is a valid experts answer (a one-hot distribution)
    add("experts-single-name", framing, f"ANSWER: {framing[2][1]}", {"action": 1}, policy=True)
    add("experts-single-position", framing, "ANSWER: 3", {"action": 2}, policy=True)

# --- replies that give no single valid decision: re-ask ------------------------------------
invalid("empty", "", "empty")
invalid("whitespace", "  \n\t ", "empty", framings=[BUTTONS, FOOD])
invalid("no-answer-line", "I am not sure; {name} and {rival} both look fine to me. Let me think more.", "no answer")
invalid("think-unclosed-no-answer", "<think>\nMaybe {name}, maybe {rival}. I need to weigh", "no answer", framings=[BUTTONS, FOOD, SLOTS])
invalid("unknown-option", "ANSWER: chartreuse", "unknown", framings=[BUTTONS, FOOD, SLOTS])
invalid("label-outside-shown", "ANSWER: purple", "not shown", framings=[BUTTONS])
invalid("out-of-range", "ANSWER: 7", "out of range", framings=[BUTTONS, SLOTS, FOOD, NUMERIC])
invalid("position-zero", "ANSWER: 0", "out of range", framings=[BUTTONS, FOOD])
invalid("comma-two-options", "ANSWER: {name}, {rival}", "several")
invalid("comma-two-positions", "ANSWER: 2, 3", "several", framings=[BUTTONS, SLOTS, FOOD])
invalid("semicolon-two-options", "ANSWER: {name}; {rival}", "several", framings=[BUTTONS, FOOD, SLOTS, TRIAL])
invalid("or-two-options", "ANSWER: {name} or {rival}", "several", framings=[BUTTONS, FOOD, SLOTS])
invalid("and-two-options", "ANSWER: {name} and {rival}", "several", framings=[BUTTONS, TRIAL])
invalid("slash-two-options", "ANSWER: {name}/{rival}", "several", framings=[BUTTONS, SLOTS])
invalid("two-answer-lines", "ANSWER: {name}\nANSWER: {rival}", "several", framings=[BUTTONS, FOOD, SLOTS])
invalid("answer-vs-tag-conflict", "<answer>{rival}</answer>\nANSWER: {name}", "several", framings=[BUTTONS, FOOD])
invalid("answer-vs-boxed-conflict", "\\boxed{{{rival}}}\n\nANSWER: {name}", "several", framings=[BUTTONS, SLOTS])
invalid("template-echo", "ANSWER: <button name>", "template", framings=[BUTTONS])
invalid("template-echo-noun", "ANSWER: <restaurant name>", "template", framings=[FOOD])
invalid("empty-boxed", "\\boxed{{}}", "empty", framings=[BUTTONS, FOOD])
invalid("empty-answer-tag", "<answer></answer>", "empty", framings=[BUTTONS, SLOTS])
invalid("refusal", "I'm sorry, but I can't help with choosing.", "no answer", framings=[BUTTONS, FOOD])
invalid("final-answer-two", "The final answer is: {name} or {rival}", "several", framings=[BUTTONS, FOOD, SLOTS])
invalid("prose-several", "{name} is good but {rival} might be better.", "no answer", framings=[BUTTONS, FOOD, SLOTS])
invalid("answer-none", "ANSWER: none", "unknown", framings=[BUTTONS, SLOTS])
invalid("non-integer-position", "ANSWER: 1.5", "unknown", framings=[BUTTONS, FOOD])
invalid("truncated-json", '{{"reasoning": "{name} is', "no answer", framings=[BUTTONS, FOOD])
invalid("distribution-on-bandit", "ANSWER: [0.5, 0.5, 0]", "not allowed", framings=[BUTTONS, SLOTS, FOOD])
invalid("pairs-on-bandit", "ANSWER: {name}: 0.5, {rival}: 0.5", "not allowed", framings=[BUTTONS, FOOD, SLOTS])
invalid("json-out-of-shown", '{{"answer": "purple"}}', "not shown", framings=[BUTTONS])
invalid("vector-sum-off", "ANSWER: [0.5, 0.6, 0.1]", "sum", framings=EXPERTS, policy=True)
invalid("vector-negative", "ANSWER: [1.2, -0.2, 0]", "negative", framings=EXPERTS, policy=True)
invalid("vector-wrong-length", "ANSWER: [0.5, 0.5]", "length", framings=EXPERTS, policy=True)
invalid("percent-sum-off", "ANSWER: [50%, 30%, 30%]", "sum", framings=[BUTTONS, SLOTS], policy=True)
invalid("pairs-unknown-name", "ANSWER: {name}: 0.5, mauve: 0.5", "unknown", framings=[BUTTONS, SLOTS], policy=True)
invalid("pairs-sum-off", "ANSWER: {name}: 0.5, {rival}: 0.2", "sum", framings=EXPERTS, policy=True)
invalid("pairs-repeated-name", "ANSWER: {name}: 0.5, {name}: 0.5", "twice", framings=[BUTTONS, FOOD], policy=True)
invalid("experts-two-names", "ANSWER: {name}, {rival}", "several", framings=EXPERTS, policy=True)

# --- more forms seen in the wild ---------------------------------------------------------------
valid("name-plus-noun", "ANSWER: {name} button", framings=[BUTTONS, BUTTONS5])
valid("weak-label-bold-sentence", "**Answer:** The {name} button.", framings=[BUTTONS])
valid("option-letter-reasoning", "Machine {rival} paid less.\nANSWER: {name}", framings=[SLOTS])
valid("answer-then-aside", "ANSWER: {name}\n\n(I explored {rival} last round.)", framings=[BUTTONS, FOOD])
valid("emoji-square-after", "ANSWER: {name} \U0001F7E5", framings=[BUTTONS])
valid("final-answer-heading-plain", "{rival} is worse.\n\n**Final Answer**\n\nANSWER: {name}", framings=[BUTTONS, FOOD])
dist("named-paren-percent", lambda n, p: f"ANSWER: {n[0]} (60%), {n[1]} (40%)", (0.6, 0.4, 0.0))
dist("vector-semicolons", lambda n, p: "ANSWER: 0.25; 0.25; 0.5", (0.25, 0.25, 0.5))
invalid("fifty-fifty-prose", "ANSWER: 50/50 between {name} and {rival}", "several", framings=[BUTTONS, FOOD])
invalid("experts-ambiguous-one", "ANSWER: 1.0", "ambiguous", framings=EXPERTS, policy=True)
invalid("maybe-two", "ANSWER: probably {name}, maybe {rival}", "several", framings=[BUTTONS, SLOTS])
invalid("answer-then-changed-mind", "ANSWER: {name}\nWait, on reflection: ANSWER: {rival}", "several", framings=[BUTTONS, FOOD])

if __name__ == "__main__":
    out = Path(__file__).with_name("parser_corpus.jsonl")
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} replies in {len({r['format'] for r in rows})} formats -> {out}")
