"""Environment every engine process the plugin starts gets, unless the user set it already.

``NCCL_NVLS_ENABLE=0`` keeps NVLink SHARP (NVLS, multicast) off in NCCL's collectives. NVLS
needs NVSwitch multicast support from the driver and fabric manager; where that is missing or
partitioned away, NCCL's communicator set-up can fail or hang, and where it works NVLS buffers
take GPU memory per communicator that the engine then cannot use for its KV cache. A benchmark
must not depend on either, so tensor-parallel engines (vLLM, SGLang, TensorRT-LLM, their
OpenAI servers) run with it off. A value the user exported wins, whatever it is: the process
inherits it untouched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

ENGINE_ENV_DEFAULTS: dict[str, str] = {"NCCL_NVLS_ENABLE": "0"}


def missing_engine_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The defaults ``environ`` (the current environment by default) does not set yet."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in ENGINE_ENV_DEFAULTS.items() if k not in environ}


def apply_engine_env(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the missing defaults in ``environ`` (this process's by default), before the engine
    is imported; the engine's own worker processes inherit them. Returns each variable's value
    now, for the engine's details in the report."""
    environ = os.environ if environ is None else environ
    environ.update(missing_engine_env(environ))
    return {k: environ[k] for k in ENGINE_ENV_DEFAULTS}
