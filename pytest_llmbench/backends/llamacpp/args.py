"""The config -> llama-cpp-python's ``Llama(...)`` and ``Llama.generate(...)`` arguments.

Universal parameters arrive through the compatibility matrix (``translation.sampling`` holds
llama.cpp's names: ``temp``, ``top_k``, ``top_p``, ``min_p``, ``repeat_penalty``); the
``llamacpp:`` section adds the engine's own settings. Pure functions, tested without llama.cpp.
"""

from __future__ import annotations

from typing import Any

from pytest_llmbench.backends.base import BackendSpec
from pytest_llmbench.compat import Translation
from pytest_llmbench.config.schema import ExperimentConfig

#: Sampling keys ``Llama.generate`` takes; the lengths are handled by the backend's loop.
GENERATE_KEYS: tuple[str, ...] = ("temp", "top_k", "top_p", "min_p", "repeat_penalty")


def llama_kwargs(spec: BackendSpec) -> dict[str, Any]:
    """``Llama(...)`` keywords: context, batch, threads, flash attention, seed, then ``extra``."""
    cfg = spec.config.llamacpp
    kwargs: dict[str, Any] = {
        "n_ctx": cfg.n_ctx,
        "n_batch": cfg.n_batch,
        "flash_attn": cfg.flash_attn,
        "verbose": False,
    }
    if cfg.n_threads is not None:
        kwargs["n_threads"] = cfg.n_threads
    if cfg.n_threads_batch is not None:
        kwargs["n_threads_batch"] = cfg.n_threads_batch
    seed = spec.translation.engine.get("seed")
    if seed is not None:
        kwargs["seed"] = int(seed)
    kwargs.update(cfg.extra)
    return kwargs


def sampling_kwargs(translation: Translation) -> dict[str, Any]:
    """``Llama.generate`` keywords from the translated sampling settings."""
    return {k: translation.sampling[k] for k in GENERATE_KEYS if k in translation.sampling}


def server_args(config: ExperimentConfig, native: bool) -> list[str]:
    """Server flags for the ``llamacpp:`` section and the seed.

    ``native``: llama.cpp's own ``llama-server`` (its documented short options); otherwise
    llama-cpp-python's ``python -m llama_cpp.server``, whose flags are its ``ModelSettings``
    fields spelled with underscores.
    """
    cfg = config.llamacpp
    if native:
        args = ["--ctx-size", str(cfg.n_ctx), "--batch-size", str(cfg.n_batch)]
        if cfg.n_threads is not None:
            args += ["--threads", str(cfg.n_threads)]
        if cfg.n_threads_batch is not None:
            args += ["--threads-batch", str(cfg.n_threads_batch)]
        args += [
            "--flash-attn",
            "on" if cfg.flash_attn else "off",
            "--seed",
            str(config.random_seed),
        ]
        return args
    args = ["--n_ctx", str(cfg.n_ctx), "--n_batch", str(cfg.n_batch)]
    if cfg.n_threads is not None:
        args += ["--n_threads", str(cfg.n_threads)]
    if cfg.n_threads_batch is not None:
        args += ["--n_threads_batch", str(cfg.n_threads_batch)]
    if cfg.flash_attn:
        args += ["--flash_attn", "true"]
    # Its default lets a new request interrupt the one streaming: requests must queue instead.
    return [*args, "--seed", str(config.random_seed), "--interrupt_requests", "false"]
