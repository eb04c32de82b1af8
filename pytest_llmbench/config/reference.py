"""The text of docs/configuration.md, generated from the schema (a test keeps it in sync)."""

from __future__ import annotations

from pytest_llmbench.config.fields import field_docs
from pytest_llmbench.config.schema import ExperimentConfig


def _default(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if value in ({}, []):
        return "{}" if isinstance(value, dict) else "[]"
    return f"{value}"


def render_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `pytest_llmbench/config/schema.py` and `config/engines.py`; do not edit.",
        "",
        "A config is YAML (`--llm-config FILE`), applied in this order: defaults, then a preset",
        "(`--llm-preset NAME` or a `preset:` key in the file), then the file, then `--llm-set`",
        "overrides and the options `--llm-model`, `--llm-device`, `--llm-repeat`, `--llm-warmup`.",
        "Unknown keys and out-of-range values are usage errors naming the dotted key, one line",
        "each (`FILE: decoder.top_k: -3 is not >= 0`); a file with several errors gets them all",
        "at once, after a line that counts them. A misspelt key gets the key it probably meant",
        "(`decoder.temprature: unknown key; did you mean 'decoder.temperature'?`), and a YAML",
        "syntax error names the line and column to edit.",
        "",
        "`docs/schema/config.json` is the config's JSON Schema (draft 2020-12), generated from the",
        "same fields by `llmbench docs`: an editor that reads JSON Schema completes keys, allowed",
        "values and these descriptions from it. With VS Code's YAML extension, a first line",
        "`# yaml-language-server: $schema=PATH/TO/docs/schema/config.json` enables it for one",
        "file. The schema checks each key on its own; rules that tie keys together (e.g.",
        "`min_output_tokens` <= `max_output_tokens`) are checked by the plugin only.",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, type_text, doc, default in field_docs(ExperimentConfig):
        type_cell = type_text.replace("|", "\\|")
        lines.append(f"| `{name}` | {type_cell} | `{_default(default)}` | {doc} |")
    lines.append("")
    lines.append(MODELS)
    return "\n".join(lines)


MODELS = """## Models

`--llm-model` (ini `llm_model`) or `model_name` in the config names the model, in one of three
forms:

| form | example | what runs |
|---|---|---|
| a model directory | `--llm-model ./models/qwen2-0.5b` | its `config.json`, tokenizer and weights |
| a `.gguf` file | `--llm-model ./qwen2-0_5b-q8_0.gguf` | llama.cpp only (in process or server) |
| a Hugging Face id | `--llm-model Qwen/Qwen2-0.5B@<revision>` | that revision's cached snapshot |

A Hugging Face id is `org/name`, optionally `@REVISION` (a branch, a tag or a commit hash, short
hashes of a cached commit included), optionally `:FILE.gguf` (that file of the repository) or
`:QUANT` (the repository's one `.gguf` file whose name holds it, e.g. `:Q8_0`), for llama.cpp.
It is resolved once per session by `huggingface_hub` itself: the cache that `HF_HOME` or
`HF_HUB_CACHE` choose (default `~/.cache/huggingface/hub`), `HF_HUB_OFFLINE`, and the token of
`hf auth login` or `HF_TOKEN`. Every backend is fed from that one resolution: pytorch, vLLM,
SGLang and TensorRT-LLM load the snapshot folder (no engine resolves or downloads on its own);
llama.cpp loads the `.gguf` picked, the only `.gguf` of a repository without weights, or the
snapshot converted to GGUF; the openai backend takes its tokenizer from the snapshot and sends the
server's model name. A path that exists wins over an id of the same spelling (a warning says so
once; write `./org/name` to mean the folder).

**Nothing is downloaded by default**: a model missing from the cache is a usage error that says
how to fetch it (`hf download org/name --revision REVISION`). `--llm-allow-download` (ini
`llm_allow_download = true`) lets the plugin download what the cache lacks from the Hub
(`HF_ENDPOINT`): the configs, tokenizer files and safetensors weights, or the one `.gguf` named;
`HF_HUB_OFFLINE=1` still forbids it. Gated and private models need a token with access.

Each result records the model in its `model_source` section (`kind` embedded, local or hub; the
id, the revision asked for, the commit measured, the path the engine loaded, the context limit)
and the summary's header names them. The commit is part of the config hash: two commits of one
id are two configs for the gate, and a history spanning both is refused.

**Context limits.** A request holds at most the model's context (`max_position_embeddings` of its
`config.json`, or a GGUF's `context_length`), or less where the engine's own setting is lower:
`vllm.max_model_len`, `sglang.context_length`, `tensorrt.max_seq_len`, `llamacpp.n_ctx` (for the
openai backend, those of its managed server). Lengths the config sets (`workload.input_tokens`
plus `max_output_tokens`; for a dataset each line after tokenizing and truncating to
`workload.input_tokens`) beyond the limit are a usage error before any engine starts, naming the
key (or the dataset line), the lengths and the limit. A benchmark's own
`llm_bench(input_tokens=...)` beyond it fails that test with one line, and the others go on.

A CI job that pins the model and keeps the Hugging Face cache between runs (GitHub Actions):

```yaml
- uses: actions/cache@v4
  with:
    path: ~/.cache/huggingface
    key: hf-Qwen2-0.5B-<revision>
- run: pytest benchmarks --llm-model Qwen/Qwen2-0.5B@<revision> --llm-allow-download \\
         --llm-json out/report.json --llm-compare history/
```

The first run downloads the pinned revision into the cache; later runs find it there (without
`--llm-allow-download`, fill the cache in an earlier step with
`hf download Qwen/Qwen2-0.5B --revision <revision>`).
"""
