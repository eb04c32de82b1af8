"""GGUF conversion checked against transformers on models other than the embedded one.

Seeded random models of the two converted architectures with what the embedded Llama lacks: a
rotary base far from the default (written by transformers 5 inside ``rope_parameters``), Qwen2's
attention biases and tied embeddings; and tokenizers of each pre-tokenizer family, whose text
llama.cpp must split exactly as transformers does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp")
torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from pytest_llmbench.backends.llamacpp.gguf_convert import (  # noqa: E402
    _SPLIT_PATTERNS,
    ensure_gguf,
)
from pytest_llmbench.workload.tinymodel import _corpus, ensure_tiny_model  # noqa: E402

SHAPE = dict(
    vocab_size=1024,
    hidden_size=128,
    intermediate_size=352,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    bos_token_id=1,
    eos_token_id=2,
)
TEXT = "In 2024, 12345 apples cost $678.90!\n\n  Don't   stop\tnow.  Bee tra'll 7 99999"


def _build(target: Path, arch: str, theta: float) -> object:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**SHAPE, rope_theta=theta, tie_word_embeddings=True))
        with torch.no_grad():  # default biases are zero: a misplaced one would not show
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.5)
    else:
        model = LlamaForCausalLM(LlamaConfig(**SHAPE, rope_theta=theta))
    model.save_pretrained(str(target))
    tiny = ensure_tiny_model()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, target / name)
    return model.eval()


def _llama(path: Path, **kwargs: object):
    return llama_cpp.Llama(model_path=str(path), verbose=False, n_ctx=512, **kwargs)


@pytest.mark.parametrize(("arch", "theta"), [("qwen2", 1e6), ("llama", 5e5)])
def test_converted_logits_match_transformers(tmp_path: Path, arch: str, theta: float) -> None:
    model = _build(tmp_path / arch, arch, theta)
    llm = _llama(ensure_gguf(tmp_path / arch, "f32", tmp_path / "gguf"), logits_all=True)
    try:
        ids = list(range(5, 300, 7))
        llm.eval(ids)
        got = np.asarray(llm.scores[: len(ids)])
    finally:
        llm.close()
    with torch.inference_mode():
        want = model(torch.tensor([ids])).logits[0].numpy()
    # Measured: 2-3e-4. A rotary base left at the default gave 1-2e-2 on these shapes.
    assert float(np.abs(got - want).max()) < 2e-3
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()


def _tokenizer(target: Path, pattern: str | None) -> object:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if pattern is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(pattern), "isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=SHAPE["vocab_size"],
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*_corpus(0), *[TEXT] * 50], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(str(target))
    return fast


@pytest.mark.parametrize("pre", ["gpt-2", *_SPLIT_PATTERNS.values()])
def test_llama_cpp_splits_text_as_transformers_does(tmp_path: Path, pre: str) -> None:
    """Digits, contractions, runs of spaces, tabs and newlines: where the families differ."""
    model_dir = tmp_path / "model"
    shutil.copytree(ensure_tiny_model(), model_dir)
    pattern = {name: p for p, name in _SPLIT_PATTERNS.items()}.get(pre)
    hf = _tokenizer(model_dir, pattern)
    path = ensure_gguf(model_dir, "f32", tmp_path / "gguf")
    import gguf

    field = gguf.GGUFReader(str(path)).fields["tokenizer.ggml.pre"]
    assert bytes(field.parts[field.data[0]]).decode() == pre
    llm = _llama(path, vocab_only=True)
    try:
        got = llm.tokenize(TEXT.encode(), add_bos=False, special=False)
    finally:
        llm.close()
    assert got == hf.encode(TEXT, add_special_tokens=False)
