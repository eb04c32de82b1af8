"""A fake ``pynvml`` for tests: the functions, constants and exceptions the meters use.

Names and behaviour follow nvidia-ml-py (``pynvml.py``): errors are NVMLError subclasses built
from a code, MIG mode is ``[current, pending]``, energy is millijoules, power milliwatts.
``test_fake_nvml_names_exist_in_real_pynvml`` keeps the names honest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

_MESSAGES = {
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
}


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - the real name
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_NOT_SUPPORTED)


class NVMLError_NoPermission(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_NO_PERMISSION)


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_LIBRARY_NOT_FOUND)


class NVMLError_GpuIsLost(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_GPU_IS_LOST)


def _unsupported() -> int:
    raise NVMLError_NotSupported()


@dataclass
class FakeGpu:
    """One physical GPU; ``energy_mj``/``power_mw`` are called on every read (raise to fail)."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    energy_mj: Callable[[], int] = _unsupported
    power_mw: Callable[[], int] = _unsupported
    mig_capable: bool = True
    mig_enabled: bool = False
    reads: int = 0


def gpu(handle: object) -> FakeGpu:
    assert isinstance(handle, FakeGpu), f"not a handle of this fake: {handle!r}"
    return handle


@dataclass
class FakeNvml:
    """Stands in for the ``pynvml`` module; counts nvmlInit/nvmlShutdown to check balance."""

    gpus: list[FakeGpu] = field(default_factory=list)
    init_error: NVMLError | None = None
    initialised: int = 0

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlDeviceGetUUID(self, handle: object) -> str:
        return gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: object) -> bytes:
        return gpu(handle).name.encode()  # older nvidia-ml-py returns bytes

    def nvmlDeviceGetMigMode(self, handle: object) -> list[int]:
        if not gpu(handle).mig_capable:
            raise NVMLError_NotSupported()
        mode = NVML_DEVICE_MIG_ENABLE if gpu(handle).mig_enabled else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceIsMigDeviceHandle(self, handle: object) -> int:
        return 0  # handles by index are always physical GPUs

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:
        gpu(handle).reads += 1
        return gpu(handle).energy_mj()

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        gpu(handle).reads += 1
        return gpu(handle).power_mw()


class FakeClock:
    """A clock that moves only when told: ``clock()`` reads it, ``advance(dt)`` moves it."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, dt_s: float) -> None:
        self.now_s += dt_s


def uuid(n: int) -> str:
    return f"GPU-{n:08x}-1111-2222-3333-444444444444"
