"""Do a benchmark's lengths fit the context? Asked before any engine sees a request.

Twice: at session start for the lengths the config sets (a usage error naming the key, exit 4,
no engine started), and at each ``llm_bench(...)`` call for the benchmark's own workload (that
test fails with one line; the others go on). Dataset prompts are measured after tokenizing and
truncating to ``input_tokens``, as they are sent, and the first line too long is named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.errors import ConfigError
from pytest_llmbench.models.context import ContextLimit, overflow
from pytest_llmbench.workload.prompts import Tokenizer, Workload, dataset_prompt_ids, read_dataset


def tightest(limits: Mapping[str, ContextLimit | None]) -> tuple[str, ContextLimit] | None:
    """The backend with the smallest context, and that context; None when none is known."""
    known = [(limit.tokens, backend, limit) for backend, limit in limits.items() if limit]
    if not known:
        return None
    _, backend, limit = min(known, key=lambda item: item[0])
    return backend, limit


def check_config(
    config: ExperimentConfig,
    limits: Mapping[str, ContextLimit | None],
    tokenizer: Callable[[], Tokenizer],
) -> None:
    """ConfigError naming the config key whose length does not fit the tightest backend's
    context (``limits`` by backend). ``tokenizer`` is called only for a dataset."""
    found = tightest(limits)
    if found is None:
        return
    backend, limit = found
    output = config.max_output_tokens
    dataset = config.workload.dataset
    if dataset:
        cap = config.workload.input_tokens
        tok = tokenizer()
        for lineno, text in read_dataset(dataset):
            problem = overflow(min(len(tok.encode(text)), cap), output, limit, backend)
            if problem:
                raise ConfigError("workload.dataset", f"{dataset}:{lineno}: {problem}")
        return
    problem = overflow(config.workload.input_tokens, output, limit, backend)
    if problem:
        key = "max_output_tokens" if output >= limit.tokens else "workload.input_tokens"
        raise ConfigError(key, problem)


def workload_problem(
    workload: Workload, limit: ContextLimit | None, backend: str, tokenizer: Tokenizer
) -> str | None:
    """Why ``workload`` does not fit ``limit`` (the first dataset line too long named), or None."""
    if limit is None:
        return None
    if workload.dataset:
        for lineno, ids in dataset_prompt_ids(workload, tokenizer):
            problem = overflow(len(ids), workload.output_tokens, limit, backend)
            if problem:
                return f"{workload.dataset}:{lineno}: {problem}"
        return None
    return overflow(workload.input_tokens, workload.output_tokens, limit, backend)
