"""Python's garbage collector kept out of measured windows.

A full (generation 2) collection walks every object the process holds: after importing
transformers and torch, and more after torch.compile, that is hundreds of thousands to millions
of objects, and a pause of tenths of a second. Where such a pause lands inside an energy window,
the GPU idles and the repetition reads slower at the same joules per token. Serving engines avoid
it the same way (vLLM freezes its heap once the engine is up): collect, then move every live
object into the permanent generation, which later collections skip.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_heap(enabled: bool = True) -> Iterator[None]:
    """Collect and freeze the heap for the block, and unfreeze it after, so that garbage of the
    benchmark (an engine it stops) is collected as usual afterwards. A heap someone else froze
    already (the user, an engine in this process) is left as it is, before and after."""
    if not enabled or gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
