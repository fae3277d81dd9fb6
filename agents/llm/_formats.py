"""Answer formats: how an LLM agent asks for its decision and how the provider is told to enforce it.

- `text`: free text ending in an `ANSWER: ...` line (the framing's instructions), read by
  `parse_answer`. Works with every model.
- `json`: the provider's structured output (`response_format` with a strict JSON schema). The
  schema's `answer` is an enum of the option names as listed to the model; experts scenarios
  ask for `probabilities`, an object with one number in [0, 1] per option name (a one-hot
  distribution chooses a single option).
- `tool`: a forced call of one function, `choose`, whose parameters are the same schema.

Both structured formats put an optional `reasoning` string first, so a model that thinks in
the open writes its reasoning before committing to an answer. The prompt describes exactly the
object the schema enforces. Support is checked with litellm's capability table
(`supports_response_schema`, `supports_function_calling`) when the plan is built; a model
litellm does not list is refused with a clear message unless `assume_capable = true`.
Self-hosted models (`hosted_vllm/`, `ollama/`, ..., or any model with a local `api_base`)
are assumed capable: litellm's table cannot know what a local server (llama.cpp, vLLM,
transformers serve) was started with, and a server that cannot do it answers with a 400,
which is reported as not retryable with the server's own message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from scenarios import ConfigError
from scenarios.framing import Framing

ANSWER_FORMATS = ("text", "json", "tool")
TOOL_NAME = "choose"


@dataclass(frozen=True)
class AnswerSchema:
    """The structured answer of one episode: option names in the order the model sees them."""

    names: tuple[str, ...]
    distribution: bool  # experts: a probability per option instead of one option name
    reasoning: bool

    def json_schema(self) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        if self.reasoning:
            properties["reasoning"] = {"type": "string", "description": "brief reasoning before the decision"}
        if self.distribution:
            properties["probabilities"] = {
                "type": "object",
                "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in self.names},
                "required": list(self.names),
                "additionalProperties": False,
            }
        else:
            properties["answer"] = {"type": "string", "enum": list(self.names)}
        return {"type": "object", "properties": properties, "required": list(properties),
                "additionalProperties": False}

    def request(self, answer_format: str) -> dict[str, Any]:
        """The keyword arguments that make the provider enforce the schema."""
        if answer_format == "json":
            return {"response_format": {"type": "json_schema", "json_schema": {
                "name": "decision", "strict": True, "schema": self.json_schema()}}}
        if answer_format == "tool":
            return {"tools": [{"type": "function", "function": {
                "name": TOOL_NAME, "description": "Record your decision for this round.",
                "parameters": self.json_schema()}}],
                "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}}}
        return {}

    def example(self) -> str:
        """The object the schema enforces, with placeholders, as the prompt shows it."""
        parts = ['"reasoning": "<brief reasoning>"'] if self.reasoning else []
        if self.distribution:
            parts.append('"probabilities": {' + ", ".join(f'{json.dumps(n)}: <p>' for n in self.names) + "}")
        else:
            parts.append('"answer": "<one of the names>"')
        return "{" + ", ".join(parts) + "}"

    def instructions(self, answer_format: str, framing: Framing) -> str:
        noun, plural = framing.option_noun, framing.option_plural
        listed = ", ".join(json.dumps(n) for n in self.names)
        if answer_format == "json":
            lead = "Reply with one JSON object only, no other text, of exactly this form:"
        else:
            lead = f"Answer by calling the function {TOOL_NAME} with arguments of exactly this form:"
        if self.distribution:
            rule = (f'"probabilities" gives every {noun} ({listed}) a probability between 0 and 1, summing to 1; '
                    f"to choose a single {noun}, give it probability 1 and the others 0.")
        else:
            rule = f'"answer" is exactly one of the {plural}: {listed}.'
        think = f' Put your brief reasoning in "reasoning" first.' if self.reasoning else ""
        return f"{lead}\n{self.example()}\nwhere {rule}{think}"


def check_support(model: str, api_base: str | None, answer_format: str, assume_capable: bool) -> None:
    """Raise ValueError when litellm says the model cannot give the structured format asked for."""
    from agents.llm._cost import is_self_hosted

    if answer_format == "text" or assume_capable or is_self_hosted(model, api_base):
        return
    import litellm

    if answer_format == "json":
        helper, what = litellm.supports_response_schema, "structured output (a JSON-schema response_format)"
    else:
        helper, what = litellm.supports_function_calling, "function calling"
    if not helper(model=model):
        raise ConfigError(
            f"LLM agent {model!r}: answer_format = {answer_format!r} needs {what}, which litellm's model table "
            f"(litellm.{helper.__name__}) does not list for this model; use answer_format = 'text', or set "
            "assume_capable = true if you know the provider supports it")
