"""The adapters' use of each engine's documented API, against stand-ins for the engine modules.

SGLang and TensorRT-LLM cannot run here (CUDA), so ``sglang`` and ``tensorrt_llm`` are replaced
in ``sys.modules`` by minimal stand-ins with the documented call signatures and output shapes
(``sglang.Engine``: ``generate``/``async_generate``/``loop``/``shutdown``; ``tensorrt_llm.LLM``:
``generate``/``generate_async``/``shutdown``, ``SamplingParams``, ``llmapi`` config classes).
They check what our code sends and how it reads what comes back: timestamps, counts, schedules.
They do not show that the real engines behave so; docs/backends.md says what was never run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import sys
import time
import types
from typing import Any

import pytest

from pytest_llmbench import compat
from pytest_llmbench.backends.base import BackendSpec, GenerationRequest, Schedule
from pytest_llmbench.backends.parallel import engine_demand
from pytest_llmbench.backends.sglang.backend import SglangBackend
from pytest_llmbench.backends.tensorrt.backend import TensorrtBackend, llm_class, materialize
from pytest_llmbench.config.load import parse_override, resolve_config
from pytest_llmbench.errors import BackendUnavailable, ConfigError, EngineError

STEP_S = 0.002  # the stand-ins' time per decoding step


def spec(backend: str, *overrides: str, device: str = "cuda") -> BackendSpec:
    config = resolve_config(overrides=[parse_override(o) for o in overrides])
    return BackendSpec("/models/m", config, compat.translate(config, backend), device)


def requests(n: int, tokens: int = 4) -> list[GenerationRequest]:
    return [GenerationRequest(f"r{i}", (1, 2, 3 + i), tokens, tokens) for i in range(n)]


# -- SGLang ----------------------------------------------------------------------------------------
# sglang 0.5.16 FINISH_ABORT.to_json() as tokenizer_manager puts it in meta_info["finish_reason"].
ABORTED_REASON = {"type": "abort", "message": "scheduler out of memory", "status_code": 500}
ABORTED = {
    "text": "",
    "output_ids": [7],
    "meta_info": {"completion_tokens": 1, "finish_reason": ABORTED_REASON},
}


class FakeSglangEngine:
    instances: list[FakeSglangEngine] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.loop = asyncio.new_event_loop()
        self.calls: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.incremental = False
        self.delta_tokens = 1  # with incremental output: queued deltas SGLang coalesces into one
        self.abort_prompts: set[int] = set()  # last prompt ids of the requests the engine aborts
        self.shut_down = False
        FakeSglangEngine.instances.append(self)

    def generate(self, input_ids: Any = None, sampling_params: Any = None, **kw: Any) -> Any:
        self.calls.append({"input_ids": input_ids, "sampling_params": sampling_params, **kw})
        if isinstance(sampling_params, dict):  # one dict applies to every prompt
            sampling_params = [sampling_params] * len(input_ids)
        return [
            ABORTED
            if ids[-1] in self.abort_prompts
            else {
                "text": "x",
                "output_ids": list(range(p["max_new_tokens"])),
                "meta_info": {"completion_tokens": p["max_new_tokens"]},
            }
            for ids, p in zip(input_ids, sampling_params, strict=True)
        ]

    async def async_generate(
        self, input_ids: Any = None, sampling_params: Any = None, stream: bool = False, **kw: Any
    ) -> Any:
        assert asyncio.get_running_loop() is self.loop  # the tokenizer manager lives there
        self.calls.append({"input_ids": input_ids, "sampling_params": sampling_params})
        n = sampling_params["max_new_tokens"]

        async def chunks() -> Any:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                step = self.delta_tokens if self.incremental else 1
                sent = 0
                while sent < n:
                    i = min(sent + step, n)
                    await asyncio.sleep(STEP_S)
                    if input_ids[-1] in self.abort_prompts and i > 1:
                        # SGLang's abort chunk: the last token only, the count of all of them.
                        meta = {"completion_tokens": i, "finish_reason": ABORTED_REASON}
                        yield {"output_ids": [i - 1], "meta_info": meta}
                        return
                    ids = list(range(sent, i)) if self.incremental else list(range(i))
                    yield {"output_ids": ids, "meta_info": {"completion_tokens": i}}
                    sent = i
            finally:
                self.in_flight -= 1

        return chunks()

    def shutdown(self) -> None:
        self.shut_down = True
        self.loop.close()


@pytest.fixture
def fake_sglang(monkeypatch: pytest.MonkeyPatch) -> type[FakeSglangEngine]:
    module = types.ModuleType("sglang")
    module.Engine = FakeSglangEngine  # type: ignore[attr-defined]
    module.__version__ = "0.0-standin"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sglang", module)
    FakeSglangEngine.instances = []
    return FakeSglangEngine


def test_sglang_start_passes_the_translated_kwargs_and_close_shuts_down(fake_sglang) -> None:
    backend = SglangBackend(spec("sglang", "sglang.tp_size=2", "sglang.schedule_policy=lpm"))
    backend.start()
    (engine,) = fake_sglang.instances
    assert engine.kwargs == {
        "model_path": "/models/m",
        "tp_size": 2,
        "schedule_policy": "lpm",
        "random_seed": 0,
    }
    info = backend.info()
    assert info.version == "0.0-standin" and info.cuda_devices == (0, 1)
    backend.close()
    assert engine.shut_down
    backend.close()  # idempotent


def test_sglang_refuses_cpu_before_loading_anything(fake_sglang) -> None:
    with pytest.raises(BackendUnavailable, match="needs a CUDA GPU"):
        SglangBackend(spec("sglang", device="cpu")).start()
    assert fake_sglang.instances == []


def test_sglang_generate_is_one_batched_call_with_token_ids(fake_sglang) -> None:
    backend = SglangBackend(spec("sglang"))
    backend.start()
    reqs = requests(3, tokens=5)
    completions = backend.generate(reqs)
    (call,) = fake_sglang.instances[0].calls
    assert call["input_ids"] == [[1, 2, 3], [1, 2, 4], [1, 2, 5]]
    assert call["sampling_params"][0] == {
        "temperature": 0.0,
        "max_new_tokens": 5,
        "min_new_tokens": 5,
        "ignore_eos": True,
    }
    assert [c.request_id for c in completions] == ["r0", "r1", "r2"]
    assert all(c.output_tokens == 5 and c.output_token_ids == (0, 1, 2, 3, 4) for c in completions)


def test_sglang_harness_overhead_times_engine_generate_against_ours(fake_sglang) -> None:
    backend = SglangBackend(spec("sglang"))
    backend.start()
    result = backend.harness_overhead(requests(3, tokens=5), repetitions=2)
    assert result.engine == "Engine.generate" and result.output_tokens == 15
    assert result.direct_tok_s > 0 and result.harness_tok_s > 0
    calls = fake_sglang.instances[0].calls
    assert len(calls) == 2 + 2 * 2  # a warm-up of each path, then both paths per repetition
    # The direct path: prompts as a user passes them, one sampling dict shared by all.
    direct = [c for c in calls if isinstance(c["sampling_params"], dict)]
    assert len(direct) == 3 and direct[0]["input_ids"] == [[1, 2, 3], [1, 2, 4], [1, 2, 5]]
    assert direct[0]["sampling_params"]["max_new_tokens"] == 5


@pytest.mark.parametrize("incremental", [False, True])
def test_sglang_serve_streams_one_timestamp_per_token(fake_sglang, incremental: bool) -> None:
    backend = SglangBackend(spec("sglang"))
    backend.start()
    fake_sglang.instances[0].incremental = incremental
    completions = backend.serve(requests(3, tokens=4), Schedule())
    for c in completions:
        assert c.output_tokens == 4 and len(c.token_times_s) == 4
        assert c.output_token_ids == (0, 1, 2, 3)
        assert c.start_s < c.first_token_s <= c.token_times_s[-1] == c.end_s
        assert all(b >= a for a, b in zip(c.token_times_s, c.token_times_s[1:], strict=False))
    assert fake_sglang.instances[0].max_in_flight == 3  # offline: all at once


def test_sglang_serve_keeps_the_concurrency_cap_and_arrival_offsets(fake_sglang) -> None:
    backend = SglangBackend(spec("sglang"))
    backend.start()
    backend.serve(requests(4), Schedule(max_concurrency=1))
    assert fake_sglang.instances[0].max_in_flight == 1
    t0 = time.perf_counter()
    completions = backend.serve(requests(3), Schedule(arrival_offsets_s=(0.0, 0.05, 0.1)))
    starts = [c.start_s - t0 for c in completions]
    assert starts[1] >= 0.05 and starts[2] >= 0.1


def test_sglang_coalesced_incremental_deltas_keep_every_token(fake_sglang) -> None:
    """With incremental_streaming_output SGLang concatenates queued deltas into one chunk."""
    backend = SglangBackend(spec("sglang"))
    backend.start()
    engine = fake_sglang.instances[0]
    engine.incremental, engine.delta_tokens = True, 3
    (c,) = backend.serve(requests(1, tokens=7), Schedule())
    assert c.output_token_ids == tuple(range(7)) and c.output_tokens == 7
    times = c.token_times_s  # tokens that arrived together share their chunk's timestamp
    assert len(times) == 7 and times[0] == times[2] < times[3] == times[5] < times[6]


def test_sglang_aborted_stream_is_a_failed_request_not_its_tokens(fake_sglang) -> None:
    backend = SglangBackend(spec("sglang"))
    backend.start()
    fake_sglang.instances[0].abort_prompts = {3}  # requests(2): prompts end in 3 and 4
    aborted, fine = backend.serve(requests(2, tokens=4), Schedule())
    assert aborted.error == "EngineError: sglang aborted the request: scheduler out of memory"
    assert aborted.output_tokens == 0 and aborted.output_token_ids == ()
    assert fine.error is None and fine.output_token_ids == (0, 1, 2, 3)


def test_sglang_aborted_offline_request_is_a_failed_request(fake_sglang) -> None:
    backend = SglangBackend(spec("sglang"))
    backend.start()
    fake_sglang.instances[0].abort_prompts = {4}
    fine, aborted = backend.generate(requests(2, tokens=4))
    assert aborted.error == "sglang aborted the request: scheduler out of memory"
    assert aborted.output_tokens == 0 and aborted.output_token_ids == () and aborted.text is None
    assert fine.error is None and fine.output_tokens == 4


@pytest.mark.parametrize("method", ["serve", "generate"])
def test_sglang_every_request_failing_is_an_engine_failure(fake_sglang, method: str) -> None:
    backend = SglangBackend(spec("sglang"))
    backend.start()
    fake_sglang.instances[0].abort_prompts = {3, 4}
    call = backend.serve if method == "serve" else backend.generate
    args = (requests(2), Schedule()) if method == "serve" else (requests(2),)
    with pytest.raises(EngineError, match="sglang: all 2 requests failed; first: .*out of memory"):
        call(*args)


# -- TensorRT-LLM ----------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True, kw_only=True)
class FakeSamplingParams:
    max_tokens: int = 32
    min_tokens: int | None = None
    ignore_eos: bool = False
    end_id: int | None = None
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    seed: int | None = None


@dataclasses.dataclass(slots=True, kw_only=True)
class OldSamplingParams:  # a release before SamplingParams.ignore_eos
    max_tokens: int = 32
    min_tokens: int | None = None
    end_id: int | None = None
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    seed: int | None = None


class FakeOutput:
    def __init__(self, token_ids: list[int]) -> None:
        self.outputs = [types.SimpleNamespace(token_ids=token_ids)]


class FakeStream:
    def __init__(self, n: int) -> None:
        asyncio.get_running_loop()  # generate_async must be called inside the running loop
        self.n = n

    async def __aiter__(self) -> Any:
        for i in range(1, self.n + 1):
            await asyncio.sleep(STEP_S)
            yield FakeOutput(list(range(i)))


class FakeLLM:
    instances: list[FakeLLM] = []
    kind = "default"

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.params: list[Any] = []
        self.shut_down = False
        FakeLLM.instances.append(self)

    def generate(self, inputs: Any, sampling_params: Any = None, use_tqdm: bool = True) -> Any:
        self.params.extend(sampling_params)
        return [FakeOutput(list(range(sp.max_tokens))) for sp in sampling_params]

    def generate_async(self, inputs: Any, sampling_params: Any, streaming: bool = False) -> Any:
        assert streaming and isinstance(inputs, list)
        self.params.append(sampling_params)
        return FakeStream(sampling_params.max_tokens)

    def shutdown(self) -> None:
        self.shut_down = True


class FakeEngineLLM(FakeLLM):
    kind = "engine"


class QuantAlgo(enum.Enum):
    FP8 = "FP8"
    W4A16_AWQ = "W4A16_AWQ"


def _config_class(name: str) -> type:
    return type(name, (), {"__init__": lambda self, **kw: setattr(self, "kw", kw)})


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch):
    def install(sampling_params: type = FakeSamplingParams, engine_module: bool = True) -> None:
        root = types.ModuleType("tensorrt_llm")
        root.LLM = FakeLLM  # type: ignore[attr-defined]
        root.SamplingParams = sampling_params  # type: ignore[attr-defined]
        root.__version__ = "1.0-standin"  # type: ignore[attr-defined]
        llmapi = types.ModuleType("tensorrt_llm.llmapi")
        for name in ("KvCacheConfig", "BuildConfig", "QuantConfig"):
            setattr(llmapi, name, _config_class(name))
        llmapi.QuantAlgo = QuantAlgo  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "tensorrt_llm", root)
        monkeypatch.setitem(sys.modules, "tensorrt_llm.llmapi", llmapi)
        if engine_module:
            engine = types.ModuleType("tensorrt_llm._tensorrt_engine")
            engine.LLM = FakeEngineLLM  # type: ignore[attr-defined]
            monkeypatch.setitem(sys.modules, "tensorrt_llm._tensorrt_engine", engine)
        else:
            monkeypatch.setitem(sys.modules, "tensorrt_llm._tensorrt_engine", None)
        FakeLLM.instances = []

    return install


def test_trt_llm_class_follows_the_plan(fake_trt) -> None:
    fake_trt()
    assert llm_class(None) is FakeLLM and llm_class("pytorch") is FakeLLM
    assert llm_class("tensorrt") is FakeEngineLLM
    fake_trt(engine_module=False)  # before 1.0: tensorrt_llm.LLM was the engine LLM
    assert llm_class("tensorrt") is FakeLLM


def test_trt_config_objects_are_built_from_the_plan(fake_trt) -> None:
    fake_trt()
    got = materialize(
        {
            "model": "/m",
            "kv_cache_config": {"free_gpu_memory_fraction": 0.8},
            "quant_config": {"quant_algo": "FP8"},
            "build_config": {"max_beam_width": 1},
        }
    )
    assert got["model"] == "/m"
    assert type(got["kv_cache_config"]).__name__ == "KvCacheConfig"
    assert got["kv_cache_config"].kw == {"free_gpu_memory_fraction": 0.8}
    assert got["quant_config"].kw == {"quant_algo": QuantAlgo.FP8}
    assert got["build_config"].kw == {"max_beam_width": 1}
    with pytest.raises(ConfigError, match="tensorrt.quantization: 'NVFP9' is not a QuantAlgo.*FP8"):
        materialize({"quant_config": {"quant_algo": "NVFP9"}})


def test_trt_start_generate_serve_close(fake_trt) -> None:
    fake_trt()
    backend = TensorrtBackend(spec("tensorrt", "tensorrt.quantization=fp8"))
    backend.start()
    (llm,) = FakeLLM.instances
    assert (
        isinstance(llm, FakeEngineLLM)
        and llm.kwargs["quant_config"].kw["quant_algo"] is QuantAlgo.FP8
    )

    completions = backend.generate(requests(2, tokens=3))
    assert [c.output_token_ids for c in completions] == [(0, 1, 2), (0, 1, 2)]
    sp = llm.params[0]
    assert (sp.max_tokens, sp.min_tokens, sp.ignore_eos, sp.top_k) == (3, 3, True, 1)

    streamed = backend.serve(requests(2, tokens=4), Schedule(max_concurrency=1))
    for c in streamed:
        assert len(c.token_times_s) == c.output_tokens == 4
        assert c.start_s < c.first_token_s <= c.end_s
    assert streamed[1].start_s >= streamed[0].end_s  # one in flight at a time
    assert backend.info().details["llm_backend"] == "tensorrt"
    backend.close()
    assert llm.shut_down


def test_trt_older_sampling_params_use_end_id(fake_trt) -> None:
    fake_trt(sampling_params=OldSamplingParams)
    backend = TensorrtBackend(spec("tensorrt"))
    backend.start()
    backend.generate(requests(1))
    sp = FakeLLM.instances[0].params[0]
    assert sp.end_id == -1 and not hasattr(sp, "ignore_eos")


# -- the GPUs each engine reports for its energy meter ---------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "devices"),
    [
        (("sharding.strategy=tensor_parallel", "sharding.num_devices=2"), (0, 1)),
        (("sglang.tp_size=2", "sglang.dp_size=2"), (0, 1, 2, 3)),
        (("sglang.tp_size=2", "sglang.extra.base_gpu_id=2"), (2, 3)),
    ],
)
def test_sglang_reports_the_gpus_it_was_started_on(
    fake_sglang, overrides: tuple[str, ...], devices: tuple[int, ...]
) -> None:
    backend = SglangBackend(spec("sglang", *overrides))
    backend.start()
    try:
        assert backend.info().cuda_devices == devices
        demand = engine_demand(backend.spec.config, "sglang")
        assert demand is not None and demand.cuda_devices == devices  # the early check agrees
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("overrides", "devices"),
    [
        (("sharding.strategy=tensor_parallel", "sharding.num_devices=2"), (0, 1)),
        (("tensorrt.tensor_parallel_size=2", "tensorrt.pipeline_parallel_size=2"), (0, 1, 2, 3)),
    ],
)
def test_tensorrt_reports_the_gpus_it_was_started_on(
    fake_trt, overrides: tuple[str, ...], devices: tuple[int, ...]
) -> None:
    fake_trt()
    backend = TensorrtBackend(spec("tensorrt", *overrides))
    backend.start()
    try:
        (llm,) = FakeLLM.instances
        world = llm.kwargs.get("tensor_parallel_size", 1) * llm.kwargs.get(
            "pipeline_parallel_size", 1
        )
        assert world == len(devices)  # what the engine was given
        assert backend.info().cuda_devices == devices
        demand = engine_demand(backend.spec.config, "tensorrt")
        assert demand is not None and demand.cuda_devices == devices
    finally:
        backend.close()
