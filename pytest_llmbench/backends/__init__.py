"""Engine adapters behind one protocol, one package per engine.

What every engine shares sits here: the protocol and its data (``base``), the lazy registry,
the host process that isolates an engine (``host``), streaming helpers and the harness-overhead
timing. Each engine package (``pytorch/``, ``vllm/``, ``sglang/``, ``tensorrt/``, ``openai/``)
holds its adapter (``backend.py``), its argument translation (``args.py``, ``options.py``) and its
own helpers; engine packages import from here, never from each other, except that the OpenAI
backend's managed servers borrow each engine's server-argument translation.
"""
