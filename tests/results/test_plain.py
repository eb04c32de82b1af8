"""Results hold exact builtin JSON types, so json and xdist's execnet carry them unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmbench.energy.base import DeviceInfo, EnergyReading, EnergyUnavailable
from pytest_llmbench.plain import as_text, plain_json, plain_str
from pytest_llmbench.results import BenchmarkResult, Repetition

from .factories import make_result

execnet = pytest.importorskip("execnet")
np = pytest.importorskip("numpy")

PLAIN = (dict, list, str, int, float, bool, type(None))


def only_builtin_types(value: Any) -> bool:
    """True when every value inside is exactly one of JSON's builtin types (or a tuple)."""
    if type(value) in (list, tuple):
        return all(only_builtin_types(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and only_builtin_types(v) for k, v in value.items())
    return type(value) in PLAIN


def ship(value: Any) -> Any:
    """What pytest-xdist does to a report property: execnet's serialiser, both ways."""
    from execnet.gateway_base import dumps, loads

    return loads(dumps(value))


class Version(str):
    """A look-alike of torch's TorchVersion: a str subclass execnet refuses."""


def result_with_engine_lookalikes() -> BenchmarkResult:
    base = make_result()
    rep = base.repetitions[0]
    reading = EnergyReading(
        method="nvml-counter",
        window_s=np.float64(1.5),
        energy_j=np.float32(30.0),
        per_device_j={Version("GPU-1"): np.float64(30.0)},
        devices=(DeviceInfo(np.int64(0), Version("H100"), Version("GPU-1")),),
        updates=np.int64(40),
        idle_power_w=np.float64(5.0),
    )
    repetition = Repetition(
        window_s=np.float64(1.5),
        iterations=np.int64(1),
        requests=np.int32(10),
        errors=0,
        input_tokens=np.int64(320),
        output_tokens=np.int64(1000),
        ttft_s=tuple(np.float64(t) for t in rep.ttft_s),
        itl_s=np.array(rep.itl_s),
        e2e_latency_s=rep.e2e_latency_s,
        energy=reading,
        good_requests=np.int64(9),
    )
    return BenchmarkResult(
        test_id=Version(base.test_id),
        backend=base.backend,
        backend_version=Version("2.13.0+cpu"),
        model=base.model,
        device=base.device,
        config_hash=base.config_hash,
        config={"runner": {"repetitions": np.int64(1)}, "temperature": np.float32(0.5)},
        workload={"name": Version("w"), "lengths": (np.int64(3), 4)},
        traffic={"arrival_offsets_s": (np.float64(0.0), 0.5), "max_concurrency": None},
        repetitions=[repetition],  # type: ignore[arg-type]  # a list, as callers may pass
        energy_method="nvml-counter",
        started_at=base.started_at,
        finished_at=base.finished_at,
        engine_details={"torch": Version("2.13.0+cpu"), "max_model_len": 2048},  # type: ignore[dict-item]
    )


def test_engine_lookalikes_become_builtin_types_where_a_result_is_built() -> None:
    result = result_with_engine_lookalikes()
    assert type(result.backend_version) is str
    assert result.engine_details == {"torch": "2.13.0+cpu", "max_model_len": "2048"}
    assert type(result.repetitions) is tuple
    data = result.to_dict()
    assert only_builtin_types(data)
    assert data["workload"]["lengths"] == [3, 4]


def test_a_result_survives_xdist_and_json_unchanged() -> None:
    data = result_with_engine_lookalikes().to_dict()
    assert ship(data) == data
    as_json = json.loads(json.dumps(data))
    again = BenchmarkResult.from_dict(as_json).to_dict()
    assert only_builtin_types(again)
    assert json.loads(json.dumps(again)) == as_json


def test_the_real_torch_version_object_is_carried_as_text() -> None:
    torch = pytest.importorskip("torch")
    assert type(torch.__version__) is not str  # the object that crashed xdist
    result = BenchmarkResult.from_dict(
        {**make_result().to_dict(), "backend_version": torch.__version__}
    )
    result = BenchmarkResult(**{**vars(result), "engine_details": {"torch": torch.__version__}})
    data = ship(result.to_dict())
    assert data["backend_version"] == data["engine_details"]["torch"] == str(torch.__version__)


def test_unavailable_energy_is_plain_too() -> None:
    reading = EnergyUnavailable(Version("no NVML"), Version("none"))
    assert type(reading.reason) is str and type(reading.method) is str


def test_a_value_that_is_no_json_is_refused_naming_its_place() -> None:
    with pytest.raises(TypeError, match=r"config\.runner\.x: object is not a JSON value"):
        plain_json({"runner": {"x": object()}}, "config")
    with pytest.raises(TypeError, match=r"workload\[1\]: set is not a JSON value"):
        plain_json([1, {2}], "workload")
    with pytest.raises(TypeError, match="test_id: expected a string, found int"):
        BenchmarkResult(**{**vars(make_result()), "test_id": 3})
    with pytest.raises(TypeError, match="key 1 is not a string"):
        plain_json({1: 2})


def test_text_of_anything_is_an_exact_str() -> None:
    assert type(as_text(Version("1.0"))) is str
    assert as_text(3) == "3"
    assert type(plain_str(Version("x"))) is str


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**31), max_value=2**62)  # execnet: no int below -2**31
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)


def disguise(value: Any) -> Any:
    """The same value with look-alike types, as engines and numpy hand them over."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, str):
        return Version(value)
    if isinstance(value, list):
        return tuple(disguise(v) for v in value)
    return {Version(k): disguise(v) for k, v in value.items()}


@given(json_values)
def test_plain_json_equals_a_json_round_trip_and_ships(value: Any) -> None:
    plain = plain_json(disguise(value))
    assert only_builtin_types(plain)
    assert plain == json.loads(json.dumps(value))
    assert ship(plain) == plain
