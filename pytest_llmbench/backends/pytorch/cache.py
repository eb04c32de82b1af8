"""Static KV caches built once and reused, so that a compiled decode step keeps its CUDA graphs.

With ``cache_implementation="static"`` transformers builds a new ``StaticCache`` in every
``generate`` call and fills it lazily inside the first forward. Its tensors then get new addresses
on every call, and where the lazy fill happens while compiling, ``mark_static_address`` is skipped
("not supported when tracing"): inductor either refuses CUDA graphs for the cache's in-place
updates ("skipping cudagraphs due to mutated inputs") or records them again for each call. The
transformers docs give the remedy: create the ``StaticCache`` yourself, ``early_initialization``
it outside any compiled region (which marks its tensors static), pass it as ``past_key_values``,
and ``reset()`` it between prompts. That is what :class:`StaticCaches` does, one cache per
batch shape (the last, smaller batch of a workload has its own).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

#: How many shapes' caches are kept (a workload needs one or two: full batches and the rest).
KEEP_SHAPES = 2


def cache_geometry(model: Any) -> tuple[int, int] | None:
    """(key/value heads, head dim) of a decoder's attention; None where one device does not hold
    the whole model (early initialisation needs a single device)."""
    device_map = getattr(model, "hf_device_map", None)
    if device_map and len(set(device_map.values())) > 1:
        return None
    config = model.config.get_text_config(decoder=True)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return int(kv_heads), int(head_dim)


class StaticCaches:
    """Early-initialised ``StaticCache`` objects by (batch size, cache length), reset per use."""

    def __init__(self, model: Any, keep: int = KEEP_SHAPES) -> None:
        self._model = model
        self._keep = keep
        self._caches: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self.early_initialised = False

    def get(self, batch_size: int, max_cache_len: int) -> Any:
        """A cleared cache for ``batch_size`` sequences of up to ``max_cache_len`` tokens."""
        key = (batch_size, max_cache_len)
        cache = self._caches.get(key)
        if cache is None:
            cache = self._build(batch_size, max_cache_len)
            self._caches[key] = cache
            while len(self._caches) > self._keep:
                self._caches.popitem(last=False)
        else:
            self._caches.move_to_end(key)
            cache.reset()
        return cache

    def _build(self, batch_size: int, max_cache_len: int) -> Any:
        from transformers import StaticCache

        model = self._model
        cache = StaticCache(config=model.config, max_cache_len=max_cache_len)
        geometry = cache_geometry(model)
        early = getattr(cache, "early_initialization", None)
        if geometry is not None and early is not None:
            kv_heads, head_dim = geometry
            early(
                batch_size=batch_size,
                num_heads=kv_heads,
                head_dim=head_dim,
                dtype=model.dtype,
                device=model.device,
            )
            self.early_initialised = True
        return cache

    def clear(self) -> None:
        self._caches.clear()


def cuda_graph_state(device_index: int = 0) -> str:
    """Whether inductor's CUDA graphs ran for the compiled decode step (for engine details).

    Read from torch's own bookkeeping: the CUDA-graph tree manager of the device (graphs
    recorded) and inductor's ``cudagraph_skips`` counter (graphs refused). Both are private
    torch APIs, so anything unexpected reads as ``unknown`` with the reason, never a guess.
    """
    try:
        from torch._dynamo.utils import counters
        from torch._inductor import cudagraph_trees

        skips = int(counters["inductor"].get("cudagraph_skips", 0))
        manager = cudagraph_trees.get_manager(device_index, create_if_none_exists=False)
        recorded = manager is not None and bool(getattr(manager, "roots", None))
    except Exception as exc:  # a torch release that moved these internals
        return f"unknown ({type(exc).__name__}: {exc})"
    if recorded:
        return "applied" if not skips else f"applied, {skips} graph(s) skipped"
    if skips:
        return f"skipped {skips} time(s) (TORCH_LOGS=cudagraphs says why)"
    return "none recorded (decode step not compiled for CUDA graphs)"
