"""The llamacpp backend on the embedded tiny model: real llama.cpp through llama-cpp-python."""

from __future__ import annotations

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from pytest_llmbench import compat  # noqa: E402
from pytest_llmbench.backends.base import BackendSpec  # noqa: E402
from pytest_llmbench.backends.llamacpp.backend import LlamacppBackend  # noqa: E402
from pytest_llmbench.config.load import resolve_config  # noqa: E402
from pytest_llmbench.quality.agreement import token_agreement  # noqa: E402
from tests.engines.test_llamacpp_backend import reqs, spec  # noqa: E402


@pytest.fixture(scope="module")
def greedy() -> LlamacppBackend:
    backend = LlamacppBackend(spec("llamacpp.n_threads=1"))
    backend.start()
    yield backend
    backend.close()


def test_forced_length_and_one_timestamp_per_token(greedy: LlamacppBackend) -> None:
    out = greedy.generate(reqs(3, out=8))
    for c in out:
        assert c.output_tokens == 8 and len(c.output_token_ids) == 8
        assert len(c.token_times_s) == 8 and list(c.token_times_s) == sorted(c.token_times_s)
        assert c.start_s <= c.first_token_s == c.token_times_s[0] and c.end_s == c.token_times_s[-1]
    assert out[0].end_s <= out[1].first_token_s  # one sequence at a time, in order


def test_eos_never_ends_a_forced_request(greedy: LlamacppBackend) -> None:
    eos = int(greedy._llm.token_eos())
    for c in greedy.generate(reqs(4, out=24)):
        assert c.output_tokens == 24 and eos not in c.output_token_ids


def test_repeated_requests_give_the_same_tokens(greedy: LlamacppBackend) -> None:
    work = reqs(2)
    assert [c.output_token_ids for c in greedy.generate(work)] == [
        c.output_token_ids for c in greedy.generate(work)
    ]


def test_f32_gguf_computes_what_transformers_computes(greedy: LlamacppBackend) -> None:
    """The converted weights (rotary permutation included) give transformers' log-probs."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(greedy.spec.model_path, dtype=torch.float32)
    prompt, response = list(range(5, 25)), list(range(30, 40))
    ids = torch.tensor([prompt + response])
    with torch.inference_mode():
        logits = model(ids).logits[0].float()
    expected = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    expected = expected.gather(1, torch.tensor(response)[:, None])[:, 0].tolist()
    got = greedy.token_logprobs(prompt, response)
    assert got == pytest.approx(expected, abs=2e-3)


def test_greedy_tokens_agree_with_transformers(greedy: LlamacppBackend) -> None:
    from pytest_llmbench.backends.pytorch.backend import PytorchBackend

    config = resolve_config()
    torch_spec = BackendSpec(
        greedy.spec.model_path, config, compat.translate(config, "pytorch"), "cpu"
    )
    reference = PytorchBackend(torch_spec)
    reference.start()
    work = reqs(4, out=8)
    want = [c.output_token_ids for c in reference.generate(work)]
    got = [c.output_token_ids for c in greedy.generate(work)]
    # Random weights leave near-ties that float order can flip; most of every prefix agrees.
    assert token_agreement(want, got) >= 0.75, (want, got)


@pytest.mark.parametrize("kind", ["f16", "bf16", "q8_0"])
def test_every_gguf_type_runs(kind: str) -> None:
    backend = LlamacppBackend(spec(f"llamacpp.quantization={kind}", "llamacpp.n_threads=1"))
    backend.start()
    try:
        assert [c.output_tokens for c in backend.generate(reqs(2, out=4))] == [4, 4]
        assert backend.info().details["gguf_type"] == kind
    finally:
        backend.close()


def test_a_llamacpp_session_on_the_cpu_measures_rapl_under_auto(
    pytester: pytest.Pytester, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No machine here has RAPL: a fake powercap tree whose package counter advances 1 J every
    millisecond-ish stands in for the hardware. ``--llm-energy auto`` must pick it for llama.cpp
    (a CPU engine) and report joules per token from it."""
    import json
    import threading

    from pytest_llmbench.energy import rapl

    zone = tmp_path / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{2**40}\n")
    (zone / "energy_uj").write_text("0\n")
    stop = threading.Event()

    def advance() -> None:
        uj = 0
        while not stop.is_set():
            uj += 1_000_000
            (zone / "next").write_text(f"{uj}\n")
            (zone / "next").replace(zone / "energy_uj")  # atomic, as sysfs reads are
            stop.wait(0.002)

    ticker = threading.Thread(target=advance, daemon=True)
    ticker.start()
    monkeypatch.setattr(rapl, "POWERCAP", zone.parent)
    pytester.makepyfile(
        """
        def test_x(llm_bench):
            llm_bench(num_prompts=2, input_tokens=8, output_tokens=4)
        """
    )
    try:
        result = pytester.runpytest_inprocess(
            "--llm-backend",
            "llamacpp",
            "--llm-energy",
            "auto",
            "--llm-json",
            "r.json",
            "--llm-repeat",
            "1",
            "--llm-min-energy-window",
            "3",
        )
    finally:
        stop.set()
        ticker.join()
    result.assert_outcomes(passed=1)
    [entry] = json.loads((pytester.path / "r.json").read_text())["results"]
    energy = entry["repetitions"][0]["energy"]
    assert entry["energy_method"].startswith("rapl"), entry["energy_method"]
    assert energy["available"], energy
    assert energy["energy_j"] > 0 and energy["updates"] >= 3
    assert entry["energy"]["energy_per_output_token"] > 0  # joules per output token, from RAPL
