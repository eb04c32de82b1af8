"""conftest texts for the fault suite's inner sessions: engines that fail on request.

``faulty`` runs in its own process (as vLLM, SGLang and TensorRT-LLM do) and starts a worker
process that does not die with it (its pid goes to ``$FAULT_DIR/workers``). Before a benchmark, a
test writes a fault into ``$FAULT_DIR/next``; the engine acts on it in its next ``generate``:
``sigkill`` kills its own process (as the OOM killer would), ``hang`` writes its pid to
``$FAULT_DIR/hanging`` and blocks (so a test can interrupt the session mid-call).
``cuda`` reports a CUDA device, so the session measures it with NVML (a fake pynvml).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

STAND_IN_SCRIPT = Path(__file__).parents[1] / "openai" / "fake_server_proc.py"

FAULTY_BACKEND = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from pathlib import Path
    from pytest_llmbench.backends.base import Backend, Capabilities, Completion, EngineInfo

    def _fault():
        path = Path(os.environ["FAULT_DIR"]) / "next"
        if not path.exists():
            return None
        what = path.read_text()
        path.unlink()
        return what

    def _complete(requests):
        out = []
        for r in requests:
            t0 = time.perf_counter()
            times = tuple(time.perf_counter() for _ in range(r.max_output_tokens))
            out.append(Completion(r.request_id, r.input_tokens, r.max_output_tokens, t0,
                                  times[-1], times[0], times))
        return out

    class Faulty(Backend):
        name = "faulty"
        extra = "none"
        capabilities = Capabilities(own_process=True, streaming=True)

        @classmethod
        def check_available(cls):
            return None

        def start(self):
            # A worker process of the engine's own, as vLLM's EngineCore: it outlives its parent.
            self.worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            with (Path(os.environ["FAULT_DIR"]) / "workers").open("a") as f:
                f.write(f"{self.worker.pid}\\n")

        def generate(self, requests):
            what = _fault()
            if what == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if what == "hang":
                print("engine: hanging in generate", flush=True)
                (Path(os.environ["FAULT_DIR"]) / "hanging").write_text(str(os.getpid()))
                time.sleep(600)
            return _complete(requests)

        def info(self):
            return EngineInfo("faulty", "1", self.spec.model_path, "cpu",
                              details={"pid": str(os.getpid())})

        def close(self):
            self.worker.terminate()
            self.worker.wait()

    class Cuda(Backend):
        name = "cuda"
        extra = "none"
        capabilities = Capabilities(streaming=True)

        @classmethod
        def check_available(cls):
            return None

        def start(self):
            pass

        def generate(self, requests):
            nvml = sys.modules["pynvml"]
            if _fault() == "gpu-lost":  # mid-window: the meter started before generate
                nvml.lose_gpu()
            time.sleep(0.05)  # long enough for the NVML poller to read the counter
            return _complete(requests)

        def info(self):
            return EngineInfo("cuda", "1", self.spec.model_path, "cuda", cuda_devices=(0,))

    def pytest_llmbench_register_backends():
        return {"faulty": Faulty, "cuda": Cuda}
    """
)


# The openai backend's managed server is tests/openai/fake_server_proc.py instead of vLLM (same
# --host/--port flags; --llm-server-arg=--mode --llm-server-arg=MODE picks its behaviour).
STAND_IN_SERVER = textwrap.dedent(
    f"""
    import importlib, sys

    _saved = {{}}
    # Through sys.modules, not the package attribute: an inner session may import it afresh.
    servers = importlib.import_module("pytest_llmbench.backends.openai.servers")

    def _command(kind, model_path, host, port, flags=(), extra_args=(), python=None):
        with open("server-launches.txt", "a") as launches:  # the inner session's cwd: tmp
            print(kind, file=launches)
        return [sys.executable, {str(STAND_IN_SCRIPT)!r}, "--host", host, "--port", str(port),
                *extra_args]

    def pytest_configure(config):
        _saved.update(build_command=servers.build_command, missing_server=servers.missing_server)
        servers.build_command = _command
        servers.missing_server = lambda kind: None

    def pytest_unconfigure(config):
        for name, value in _saved.items():
            setattr(servers, name, value)
    """
)
