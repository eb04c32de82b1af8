"""Which server answers: its software and version, from what OpenAI-compatible servers expose.

There is no standard endpoint for it, so each server is recognised by its own marks, asked in
this order (each a cheap GET; a 404 only rules that server out):

- ``/version`` ``{"version": ...}``: vLLM (and servers copying it); SGLang's ``/server_info``;
- ``/v1/models`` ``owned_by``: ``vllm``, ``sglang``, ``llamacpp`` (llama.cpp's ``llama-server``),
  ``tensorrt_llm``; llama-cpp-python's server says ``me``, which names nobody;
- ``/props`` ``build_info`` (``b6123-1a2b3c4``): llama.cpp's ``llama-server`` build;
- ``/openapi.json`` ``info.title`` and ``info.version``: FastAPI servers, among them
  llama-cpp-python's (``llama.cpp Python API``, its package version).

The label is ``<software> <version>`` (``vLLM 0.11.0``, ``llama.cpp b6123``,
``llama-cpp-python 0.3.36``), the version alone where the software is not recognised, and
``unknown`` where nothing answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Get = Callable[[str], "dict[str, Any] | None"]
"""GET a path of the server; its JSON object, or None where the server has no such endpoint."""

OWNED_BY = {
    "vllm": "vLLM",
    "sglang": "SGLang",
    "llamacpp": "llama.cpp",
    "tensorrt_llm": "TensorRT-LLM",
    "trtllm": "TensorRT-LLM",
}


def server_label(get: Get, models: dict[str, Any] | None = None) -> str:
    """The server's software and version as one label; ``models`` is ``/v1/models`` when the
    caller already has it (it is asked otherwise)."""
    # SGLang (0.5.16) has no /version; its /server_info holds the version among its settings.
    version = _text(get("/version"), "version") or _text(get("/server_info"), "version")
    software = _owner(models if models is not None else get("/v1/models"))
    if software == "llama.cpp" or (software is None and version is None):
        build = _text(get("/props"), "build_info")
        if build is not None:
            software, version = "llama.cpp", build.split("-", 1)[0]
    if software is None and version is None:
        info = (get("/openapi.json") or {}).get("info")
        title = _text(info, "title") or ""
        if "llama.cpp python" in title.lower():
            software, version = "llama-cpp-python", _text(info, "version")
    if software is None:
        return version or "unknown"
    return f"{software} {version}" if version else f"{software}, version unknown"


def _owner(models: dict[str, Any] | None) -> str | None:
    data = (models or {}).get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    return OWNED_BY.get(str(data[0].get("owned_by", "")).lower())


def _text(mapping: object, key: str) -> str | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()
