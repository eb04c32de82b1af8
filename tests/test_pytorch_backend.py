"""The pytorch backend on the embedded tiny model (real transformers, CPU)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench import compat
from pytest_llmbench.backends.base import BackendSpec, GenerationRequest
from pytest_llmbench.backends.pytorch.batching import dynamic_batches, static_batches
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.errors import ConfigError, UnsupportedParameter

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pytest_llmbench.backends.pytorch.backend import (  # noqa: E402
    PytorchBackend,
    cuda_ordinals,
    sharded_max_memory,
)
from pytest_llmbench.workload.tinymodel import ensure_tiny_model  # noqa: E402


def make_backend(*overrides: str) -> PytorchBackend:
    config = resolve_config(overrides=[parse_override(o) for o in overrides])
    spec = BackendSpec(str(ensure_tiny_model()), config, compat.translate(config, "pytorch"), "cpu")
    backend = PytorchBackend(spec)
    backend.start()
    return backend


def reqs(lengths: list[int], out: int = 6) -> list[GenerationRequest]:
    return [
        GenerationRequest(f"r{i}", tuple(range(5, 5 + n)), out, out) for i, n in enumerate(lengths)
    ]


@pytest.fixture(scope="module")
def greedy() -> PytorchBackend:
    return make_backend("batching.batch_size=2")


def test_forced_length_for_every_request_in_uneven_batches(greedy: PytorchBackend) -> None:
    completions = greedy.generate(reqs([3, 9, 5]))
    assert [c.request_id for c in completions] == ["r0", "r1", "r2"]
    assert [c.output_tokens for c in completions] == [6, 6, 6]
    for c in completions:
        assert len(c.token_times_s) == 6
        assert c.start_s <= c.first_token_s <= c.end_s  # type: ignore[operator]
        assert list(c.token_times_s) == sorted(c.token_times_s)


def test_left_padding_does_not_change_greedy_output(greedy: PytorchBackend) -> None:
    alone = make_backend("batching.batch_size=1").generate(reqs([3, 9]))
    batched = greedy.generate(reqs([3, 9]))
    assert [c.output_token_ids for c in alone] == [c.output_token_ids for c in batched]


def test_seeded_sampling_is_reproducible() -> None:
    backend = make_backend(
        "decoder.do_sample=true", "decoder.top_k=20", "decoder.temperature=1.5", "random_seed=7"
    )
    first = backend.generate(reqs([4, 4]))
    second = backend.generate(reqs([4, 4]))
    assert [c.output_token_ids for c in first] == [c.output_token_ids for c in second]
    kwargs = backend.generate_kwargs()
    assert kwargs["top_k"] == 20 and kwargs["do_sample"] is True and "min_p" not in kwargs


def test_greedy_drops_sampling_only_arguments(greedy: PytorchBackend) -> None:
    kwargs = greedy.generate_kwargs()
    assert kwargs["do_sample"] is False
    assert not {"temperature", "top_p", "top_k", "min_p"} & set(kwargs)
    assert kwargs["max_new_tokens"] == kwargs["min_new_tokens"] == 16


def test_dynamic_strategy_runs_every_request(greedy: PytorchBackend) -> None:
    backend = make_backend(
        "batching.strategy=dynamic", "batching.max_tokens_per_batch=40", "batching.batch_size=8"
    )
    completions = backend.generate(reqs([2, 12, 3, 11]))
    assert [c.output_tokens for c in completions] == [6] * 4


def test_greedy_tokens_have_the_highest_log_probability(greedy: PytorchBackend) -> None:
    prompt = tuple(range(5, 12))
    (c,) = greedy.generate([GenerationRequest("x", prompt, 3, 3)])
    chosen = greedy.token_logprobs(prompt, c.output_token_ids[:1])[0]
    others = [
        greedy.token_logprobs(prompt, [t])[0] for t in range(20, 30) if t != c.output_token_ids[0]
    ]
    assert chosen <= 0
    assert all(chosen >= o for o in others)


def test_encode_decode_and_stop_strings(greedy: PytorchBackend) -> None:
    ids = greedy.encode("Hello world.")
    assert greedy.decode(ids) == "Hello world."
    text = greedy.generate_text("Hello", max_new_tokens=12)
    assert text
    stop = text[len(text) // 2 :][:2] or text[:1]
    stopped = greedy.generate_text("Hello", max_new_tokens=12, stop=[stop])
    assert stop not in stopped


def test_bitsandbytes_on_cpu_is_a_clear_error() -> None:
    with pytest.raises(
        UnsupportedParameter, match="quantization.load_in_4bit needs CUDA; this run uses cpu"
    ):
        make_backend("quantization.load_in_4bit=true")


def test_assisted_generation_needs_batch_size_one_then_works() -> None:
    draft = str(ensure_tiny_model())
    with pytest.raises(UnsupportedParameter, match="needs batching.batch_size 1"):
        make_backend(f"pytorch.assisted_generation.model={draft}", "batching.batch_size=2")
    backend = make_backend(f"pytorch.assisted_generation.model={draft}")
    assert [c.output_tokens for c in backend.generate(reqs([4]))] == [6]


@given(st.lists(st.integers(1, 50), max_size=20), st.integers(1, 8))
def test_static_batches_are_exact(lengths: list[int], size: int) -> None:
    batches = static_batches(reqs(lengths), size)
    assert [r.request_id for b in batches for r in b] == [f"r{i}" for i in range(len(lengths))]
    assert all(len(b) == size for b in batches[:-1])


@given(st.lists(st.integers(1, 50), max_size=20), st.integers(10, 200), st.integers(1, 8))
def test_dynamic_batches_keep_every_request_within_budget(
    lengths: list[int], budget: int, cap: int
) -> None:
    batches = dynamic_batches(reqs(lengths), budget, cap)
    ids = sorted(r.request_id for b in batches for r in b)
    assert ids == sorted(f"r{i}" for i in range(len(lengths)))
    for b in batches:
        assert len(b) <= cap
        cost = max(r.input_tokens + r.max_output_tokens for r in b) * len(b)
        assert cost <= budget or len(b) == 1


# -- several GPUs: device_map placement (what can be checked without a GPU) -----------------------


def test_sharded_placement_keeps_the_first_n_gpus_and_the_cpu() -> None:
    free = {0: 80, 1: 80, 2: 80, 3: 80, "cpu": 500}  # accelerate's get_max_memory() shape
    assert sharded_max_memory(free, 2) == {0: 80, 1: 80, "cpu": 500}
    assert sharded_max_memory(free, 4) == free
    with pytest.raises(
        ConfigError, match="^sharding.num_devices: 5 GPUs asked for but CUDA sees 4"
    ):
        sharded_max_memory(free, 5)


def test_engine_devices_are_the_gpus_its_parameters_landed_on() -> None:
    import torch

    placed = [torch.device("cuda", 1), torch.device("cuda", 0), torch.device("cuda", 1)]
    assert cuda_ordinals(placed) == (0, 1)
    offloaded = [torch.device("cuda", 2), torch.device("cpu"), torch.device("meta")]
    assert cuda_ordinals(offloaded) == (2,)  # CPU- or disk-offloaded layers use no GPU
    assert cuda_ordinals([torch.device("cpu")]) == ()


def test_sharding_on_the_cpu_loads_through_device_map_and_generates() -> None:
    """sharding.strategy on the pytorch backend is transformers' device_map="auto" (accelerate);
    on a CPU machine every layer lands on the CPU and no GPU is counted."""
    backend = make_backend("sharding.strategy=tensor_parallel", "sharding.num_devices=2")
    try:
        assert backend._load_kwargs()["device_map"] == "auto"
        assert [c.output_tokens for c in backend.generate(reqs([3, 5]))] == [6, 6]
        assert backend.info().cuda_devices == ()
    finally:
        backend.close()
