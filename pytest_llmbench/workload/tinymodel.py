"""The embedded default model: a tiny Llama with seeded random weights and a local tokenizer.

Nothing is downloaded. Performance does not depend on weight values, and output lengths are forced,
so random weights measure the engine as well as trained ones. head_dim is 32 because vLLM's CPU
attention needs head_dim >= 32.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

CACHE_ENV = "LLMBENCH_CACHE_DIR"


@dataclass(frozen=True)
class TinyModelSpec:
    """A Llama shape. ``vocab_size`` is the tokenizer's; the model's embedding may be larger
    (``model_vocab_size``) so that large shapes keep their real embedding cost."""

    vocab_size: int = 1024
    model_vocab_size: int | None = None
    hidden_size: int = 128
    intermediate_size: int = 352
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    seed: int = 0
    dtype: str = "float32"
    """Weights' dtype on disk. Large shapes are built in bfloat16 on a GPU when one is present:
    seeded random weights of 8B parameters take minutes to draw on a CPU and seconds on a GPU
    (the values differ between the two, which no speed or energy figure depends on)."""

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def digest(self) -> str:
        fields = asdict(self)
        if fields["dtype"] == "float32":  # shapes built before dtype existed keep their folder
            del fields["dtype"]
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(blob + _FORMAT_VERSION.encode()).hexdigest()[:12]


_FORMAT_VERSION = "1"  # bump when the build below changes what lands on disk


def cache_root() -> Path:
    """``$LLMBENCH_CACHE_DIR`` or ``~/.cache/pytest-llmbench``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "pytest-llmbench"


def _corpus(seed: int, lines: int = 4000) -> list[str]:
    """Deterministic text for training the tokenizer: syllable words plus digits and punctuation."""
    rng = random.Random(seed)
    onsets = [
        "b",
        "c",
        "d",
        "f",
        "g",
        "h",
        "k",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "v",
        "w",
        "st",
        "tr",
    ]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou", "ee"]
    words = [
        "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(1, 3)))
        for _ in range(600)
    ]
    out = []
    for _ in range(lines):
        n = rng.randint(4, 16)
        sentence = " ".join(rng.choice(words) for _ in range(n))
        out.append(
            sentence.capitalize() + rng.choice([".", "!", "?", ",", f" {rng.randint(0, 999)}."])
        )
    return out


def _build_tokenizer(spec: TinyModelSpec, target: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(spec.seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
    fast.save_pretrained(str(target))


def _build_model(spec: TinyModelSpec, target: Path, vocab_size: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=False,
    )
    dtype = getattr(torch, spec.dtype)
    device = "cuda" if dtype != torch.float32 and torch.cuda.is_available() else "cpu"
    torch.manual_seed(spec.seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(str(target), safe_serialization=True)


def ensure_tiny_model(spec: TinyModelSpec | None = None, root: Path | None = None) -> Path:
    """Path of the built model directory, building it once (atomically) when absent.

    Concurrent builders (pytest-xdist workers) each build in a temporary directory and the first
    rename wins, so a reader never sees a half-written model.
    """
    spec = spec or TinyModelSpec()
    base = root or cache_root()
    target = base / f"tiny-llama-{spec.digest()}"
    if (target / "config.json").is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=base))
    try:
        _build_tokenizer(spec, staging)
        from transformers import AutoTokenizer

        vocab = len(AutoTokenizer.from_pretrained(str(staging)))
        _build_model(spec, staging, max(vocab, spec.model_vocab_size or 0))
        (staging / "llmbench-tiny.json").write_text(json.dumps(asdict(spec), indent=2))
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


SHAPES: dict[str, TinyModelSpec] = {
    "tiny": TinyModelSpec(),
    # The 1.1B shape of the reference GPU numbers (TinyLlama-1.1B: 22 layers, GQA 32/4).
    "llama-1.1b": TinyModelSpec(
        model_vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
    ),
    # Llama-3-8B's shape (GQA 32/8, 128k vocabulary), bfloat16: big enough that a batched decode
    # step keeps an H100/H200 busy longer than the host takes to launch it (the gate workload).
    "llama-8b": TinyModelSpec(
        model_vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=8192,
        dtype="bfloat16",
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Build a model shape and print its path (``python -m ...tinymodel --shape llama-1.1b``)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument(
        "--root", type=Path, default=None, help="cache folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    print(ensure_tiny_model(SHAPES[args.shape], args.root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
