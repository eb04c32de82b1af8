"""Errors a user can act on; the plugin turns them into one-line usage errors."""

from __future__ import annotations

from collections.abc import Sequence


def one_line(text: str) -> str:
    """``text`` as one printable line: user input (a YAML key, a value) may hold newlines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class LLMBenchError(Exception):
    """Base class for errors caused by user input or the environment, not by our code."""


class ConfigError(LLMBenchError):
    """A configuration value is invalid; the message names the dotted field and what is allowed."""

    def __init__(self, field: str, message: str, source: str | None = None) -> None:
        self.field = field
        self.detail = message
        self.source = source
        where = f"{source}: " if source else ""
        named = f"{field}: " if field else ""  # a whole-file problem names no key
        super().__init__(one_line(f"{where}{named}{message}"))

    def with_source(self, source: str) -> ConfigError:
        """The same error, said of ``source`` (the file or layer that brought the value)."""
        return ConfigError(self.field, self.detail, source=source)


class ConfigErrors(ConfigError):
    """Every error found in one config source, reported at once: a first line saying how many,
    then one line per error in the ``source: dotted.key: problem`` form. Raised only for two or
    more; ``field`` and ``detail`` are the first error's."""

    def __init__(self, errors: Sequence[ConfigError], source: str | None = None) -> None:
        if len(errors) < 2:
            raise ValueError("ConfigErrors needs two or more errors; raise the one error")
        self.errors = tuple(e.with_source(source) if source else e for e in errors)
        first = self.errors[0]
        super().__init__(first.field, first.detail, source)
        where = f"{source}: " if source else ""
        lines = [f"{where}{len(self.errors)} config errors:", *(str(e) for e in self.errors)]
        self.args = ("\n".join(lines),)

    def with_source(self, source: str) -> ConfigErrors:
        return ConfigErrors(self.errors, source=source)


class BackendUnavailable(LLMBenchError):
    """A backend cannot be used here (missing package, no CUDA, ...); tests using it skip."""


class UnsupportedParameter(LLMBenchError):
    """A parameter the config sets has no equivalent on the selected backend."""


class EngineError(LLMBenchError):
    """The engine failed while serving a workload; fails the test that needed it."""


class ReportError(LLMBenchError):
    """A report file (e.g. a baseline) cannot be read; the message names the file and problem."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(one_line(f"{path}: {problem}"))


class MixedBackendsError(LLMBenchError):
    """Results of different backends would be pooled; refused unless mixing is allowed."""

    def __init__(self, backends: list[str] | tuple[str, ...] | set[str]) -> None:
        self.backends = tuple(sorted(set(backends)))
        super().__init__(
            f"Mixed backends detected: {', '.join(self.backends)}. Aggregating results from "
            "different backends produces statistically invalid comparisons."
        )


class StorageError(LLMBenchError):
    """A saved run cannot be found or written in the storage folder."""


class QualityUnavailable(LLMBenchError):
    """A backend cannot give what a quality check needs (log-probs, greedy token ids); the
    message is the reason, shown as ``unavailable (reason)``."""
