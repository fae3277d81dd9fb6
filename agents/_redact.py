"""Keeping secrets out of every log, run file, dataset and report.

`Redactor(secrets)` replaces, in any text, every run of 8 or more characters that also occurs
in a secret (so a key a provider echoes whole, cut in two by a truncation, or masked to its
first and last characters never leaves a fragment of 8 characters or more) by `<NAME>`, the
name of the variable that holds it. Text is always redacted before it is shortened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
FRAGMENT = 8  # the shortest part of a secret that may never be written


def environment_secrets() -> dict[str, str]:
    """Values of secret-looking environment variables (API keys, tokens), by variable name."""
    return {name: value for name, value in os.environ.items()
            if len(value) >= FRAGMENT and _SECRET_NAME.search(name)}


class Redactor:
    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._owner: dict[str, str] = {}  # fragment -> the name of the secret it belongs to
        self._short: dict[str, str] = {}  # secrets shorter than a fragment: replaced whole
        for name, value in secrets.items():
            if not value:
                continue
            if len(value) < FRAGMENT:
                if len(value) >= 4:
                    self._short[value] = name
                continue
            for i in range(len(value) - FRAGMENT + 1):
                self._owner.setdefault(value[i:i + FRAGMENT], name)
        fragments = sorted(self._owner, key=re.escape)
        # a lookahead finds the fragments starting at every position, overlapping ones included
        self._pattern = re.compile("(?=(" + "|".join(map(re.escape, fragments)) + "))") if fragments else None

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        for value, name in self._short.items():
            text = text.replace(value, f"<{name}>")
        if self._pattern is None or self._pattern.search(text) is None:
            return text
        spans: list[list[int]] = []
        for match in self._pattern.finditer(text):
            start, end, name = match.start(), match.start() + FRAGMENT, self._owner[match.group(1)]
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end, name])
        pieces, last = [], 0
        for start, end, name in spans:
            pieces += [text[last:start], f"<{name}>"]
            last = end
        return "".join(pieces) + text[last:]


def redact(text: str, extra: Mapping[str, str] | None = None) -> str:
    """Redact the secret-looking environment variables (and `extra`) from one text."""
    return Redactor({**environment_secrets(), **(extra or {})})(text)
