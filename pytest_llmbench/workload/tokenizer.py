"""The tokenizer the harness builds prompts with, loaded once per model in the pytest process."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any


class HarnessTokenizer:
    """encode/decode without special tokens, and the ordinary (non-special) vocabulary."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self._tok = hf_tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(token_ids), skip_special_tokens=True))

    def vocab_ids(self) -> list[int]:
        # Tokens added beyond the base vocabulary are no ordinary text either: a tokenizer read
        # from a GGUF gains one (<|endoftext|>) that the model's embedding does not have.
        base = getattr(self._tok, "vocab_size", None) or len(self._tok)
        added = {i for i in self._tok.get_added_vocab().values() if i >= base}
        special = set(self._tok.all_special_ids) | added
        return [i for i in range(len(self._tok)) if i not in special]


def hf_tokenizer(model_path: str) -> Any:
    """transformers' tokenizer of a model directory or of a ``.gguf`` file: the tokenizer files
    beside it where there are (a Hugging Face snapshot), else the vocabulary inside the GGUF."""
    from transformers import AutoTokenizer

    path = Path(model_path)
    if path.suffix == ".gguf" and path.is_file():
        folder = path.parent
        if any((folder / name).is_file() for name in _TOKENIZER_FILES):
            return AutoTokenizer.from_pretrained(str(folder))
        return AutoTokenizer.from_pretrained(str(folder), gguf_file=path.name)
    return AutoTokenizer.from_pretrained(model_path)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@lru_cache(maxsize=8)
def load_tokenizer(model_path: str) -> HarnessTokenizer:
    return HarnessTokenizer(hf_tokenizer(model_path))
