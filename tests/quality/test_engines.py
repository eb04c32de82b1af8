"""The probe, perplexity and speculative counts on real engines: pytorch in process, vLLM hosted.

Same weights (the embedded model) at float32 on both: the greedy probes agree and the
perplexities of the reference text match closely, which is what makes a drop in either a signal.
"""

from __future__ import annotations

import importlib.util

import pytest

from pytest_llmbench import compat
from pytest_llmbench.backends.base import BackendSpec
from pytest_llmbench.config.fields import build
from pytest_llmbench.config.schema import ExperimentConfig
from pytest_llmbench.quality.agreement import token_agreement
from pytest_llmbench.quality.perplexity import measure_perplexity, reference_ids
from pytest_llmbench.quality.probe import OUTPUT_TOKENS, probe_prompts, run_probe

pytest.importorskip("transformers")


def _spec(backend: str, **sections: object) -> BackendSpec:
    from pytest_llmbench.workload.tinymodel import ensure_tiny_model

    cfg = build(ExperimentConfig, {"device": "cpu", "fp_precision": "float32", **sections})
    return BackendSpec(str(ensure_tiny_model()), cfg, compat.translate(cfg, backend), "cpu")


def _reference(spec: BackendSpec) -> list[int]:
    from pytest_llmbench.workload.tokenizer import load_tokenizer

    return reference_ids(load_tokenizer(spec.model_path))


@pytest.fixture(scope="module")
def pytorch_engine():
    from pytest_llmbench.backends.pytorch.backend import PytorchBackend

    backend = PytorchBackend(_spec("pytorch"))
    backend.start()
    yield backend
    backend.close()


def test_pytorch_probe_is_greedy_whatever_the_sampling_config(pytorch_engine) -> None:
    from pytest_llmbench.backends.pytorch.backend import PytorchBackend

    ids = _reference(pytorch_engine.spec)
    greedy = run_probe(pytorch_engine, ids, backend="pytorch", model="m", dtype="float32")
    sampling = PytorchBackend(
        _spec("pytorch", decoder={"do_sample": True, "temperature": 1.5, "top_k": 5})
    )
    sampling.start()
    try:
        again = run_probe(sampling, ids, backend="pytorch", model="m", dtype="float32")
    finally:
        sampling.close()
    assert greedy.outputs is not None and again.outputs == greedy.outputs
    assert all(len(o) == OUTPUT_TOKENS for o in greedy.outputs)


def test_prompt_lookup_counts_drafts_and_keeps_the_outputs(pytorch_engine) -> None:
    from pytest_llmbench.backends.pytorch.backend import PytorchBackend

    assisted = {"method": "prompt_lookup", "num_tokens": 5}
    spec = _spec("pytorch", batching={"batch_size": 1}, pytorch={"assisted_generation": assisted})
    speculative = PytorchBackend(spec)
    speculative.start()
    try:
        prompts = probe_prompts(_reference(spec))
        before = speculative.speculative_counters()
        out = speculative.greedy_token_ids(prompts, OUTPUT_TOKENS)
        counts = speculative.speculative_counters()
    finally:
        speculative.close()
    assert out == pytorch_engine.greedy_token_ids(prompts, OUTPUT_TOKENS)  # only observed
    assert before is not None and before.drafts == 0
    assert counts is not None and counts.method == "prompt_lookup"
    assert counts.drafts > 0 and 0 < counts.accepted_tokens <= counts.draft_tokens
    assert counts.draft_tokens <= 5 * counts.drafts
    assert pytorch_engine.speculative_counters() is None  # no speculation: no section


def test_pytorch_perplexity_is_that_of_its_logits(pytorch_engine) -> None:
    import math

    import torch

    ids = _reference(pytorch_engine.spec)
    ppl = measure_perplexity(pytorch_engine, ids)
    with torch.inference_mode():
        logits = pytorch_engine._model(torch.tensor([ids])).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]))
    assert ppl.tokens == len(ids) - 1
    assert ppl.value == pytest.approx(math.exp(float(nll)), rel=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
def test_vllm_and_pytorch_agree_on_the_same_float32_weights(pytorch_engine) -> None:
    from pytest_llmbench.backends.host import HostedBackend

    spec = _spec("vllm", vllm={"max_model_len": 512, "enforce_eager": True})
    ids = _reference(spec)
    host = HostedBackend("vllm", spec)
    try:
        host.start()
        assert host.info().details["dtype"] == "float32"
        vllm_probe = run_probe(host, ids, backend="vllm", model="m", dtype="float32")
        vllm_ppl = measure_perplexity(host, ids)
    finally:
        host.close()
    torch_probe = run_probe(pytorch_engine, ids, backend="pytorch", model="m", dtype="float32")
    torch_ppl = measure_perplexity(pytorch_engine, ids)
    assert vllm_probe.outputs is not None and torch_probe.outputs is not None
    assert token_agreement(vllm_probe.outputs, torch_probe.outputs) >= 0.9
    assert vllm_ppl.value is not None and torch_ppl.value is not None
    assert vllm_ppl.value == pytest.approx(torch_ppl.value, rel=1e-3)
