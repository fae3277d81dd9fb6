"""Provider quirks: what one provider (or model family) needs that litellm does not already do.

A quirk is one function, registered under a model-string prefix, that adjusts the request the
client sends (the cache key is made after it, so a quirk that changes the request also keys
the cache apart). The longest registered prefix of the agent's model string applies:

    from agents.llm import QUIRKS

    @QUIRKS.register("openai/o1", help="o1 models take no temperature")
    def no_temperature(request, settings):
        return {k: v for k, v in request.items() if k != "temperature"}

Third parties register through the "regret_harness.provider_quirks" entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scenarios import Registry

Quirk = Callable[[dict[str, Any], Any], dict[str, Any]]

QUIRKS: Registry[Quirk] = Registry("provider quirk", "regret_harness.provider_quirks")


def apply_quirks(request: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The request after the quirk registered for the longest prefix of `settings.model`, if any."""
    model = settings.model
    matches = [name for name in QUIRKS.names() if model.startswith(name)]
    if not matches:
        return request
    return QUIRKS.get(max(matches, key=len))(dict(request), settings)
