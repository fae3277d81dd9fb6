"""One exception base for the whole project; the CLI picks its exit status from the type.

`scenarios` is the bottom layer (agents, harness and finetune all import it), so the base
lives here and every package re-exports it:

    RegretError                      exit 1: something failed while doing what was asked
    ├── UsageError (ValueError)      exit 2: bad input, reported before anything is written
    │   ├── ConfigError              a setting, flag or config value out of range or of the wrong type
    │   ├── UnknownNameError (KeyError)  a name no registry holds (the message suggests close ones)
    │   ├── ScenarioError            bad scenario parameters or an invalid action
    │   ├── PlanError                a malformed suite or plan           (harness)
    │   ├── RunStoreError            a run directory that cannot be used as asked (harness)
    │   ├── BaselineError            a check baseline file that cannot be used (harness)
    │   ├── StatsError               a statistic asked for with unusable arguments (harness)
    │   ├── BackendError             a fine-tuning backend that cannot be used as asked (finetune)
    │   └── DatasetError             a dataset that cannot be built or trained on (finetune)
    ├── ProviderError (RuntimeError) a provider call failed for good (agents.llm)
    ├── ServerError (RuntimeError)   a model server failed to start or died (finetune.serve)
    └── CommandError                 a CLI failure with its own exit status (harness.cli)

UsageError subclasses ValueError so code written against the standard library's convention
(`except ValueError`) keeps working; but the CLI itself treats a bare ValueError as a bug.
"""

from __future__ import annotations


class RegretError(Exception):
    """Base of every error the project raises on purpose; `exit_code` is the CLI's exit status."""

    exit_code: int = 1


class UsageError(RegretError, ValueError):
    """Bad input: unknown name, malformed file, value out of range. The CLI exits 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting (config field, flag, agent or backend setting) that cannot be used."""


class UnknownNameError(UsageError, KeyError):
    """A name that is not registered; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ScenarioError(UsageError):
    """Bad scenario input: unknown parameter, out-of-range value, invalid action."""


class CommandError(RegretError):
    """A CLI failure to report as one line; `code` is the exit status (2 unless said)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = self.exit_code = code


def suggest(name: str, known: object, what: str = "", n: int = 1, cutoff: float = 0.6) -> str:
    """The did-you-mean hint for `name` among `known`: "; did you mean 'x'?" or ""."""
    import difflib

    close = difflib.get_close_matches(str(name), sorted(map(str, known)), n=n, cutoff=cutoff)  # type: ignore[call-overload]
    if not close:
        return ""
    return f"; did you mean {' or '.join(repr(c) for c in close)}?"


def unknown_key_message(where: str, key: str, known: object, noun: str = "setting", plural: str = "settings") -> str:
    """'WHERE: unknown NOUN 'KEY'; did you mean ...? (PLURAL: a, b, c)' — one wording for every config."""
    names = sorted(map(str, known))  # type: ignore[call-overload]
    return f"{where}: unknown {noun} {key!r}{suggest(key, names)} ({plural}: {', '.join(names) or 'none'})"
