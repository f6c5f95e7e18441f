"""Which architectures lmfacts can hook: the ones TransformerLens' TransformerBridge supports.

A model whose configuration names no architecture the bridge knows (ALBERT, DistilBERT, ELECTRA,
DeBERTa-v2 … in TransformerLens 4.3) cannot be booted, and TransformerBridge says so with a
``ValueError`` deep inside its loader that lists all 160 of its architectures, vision and audio
included. :func:`check_config_supported` asks the bridge's own resolver
(``determine_architecture_from_hf_config``) the same question from the ``config.json`` alone, before
any weight is read, and raises :class:`UnsupportedArchitectureError` naming the model, what its
configuration declares and the text architectures that are supported (masked-LM encoders and causal
decoders), so ``pytest claims/ --model DIR`` stops with a usage error instead of one traceback per claim.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lmfacts.models.names import ModelUnavailableError

_ENCODER_SUFFIXES = ("ForMaskedLM",)
_DECODER_SUFFIXES = ("ForCausalLM", "LMHeadModel", "CausalLM")


class UnsupportedArchitectureError(ModelUnavailableError):
    """The model's architecture is not one TransformerBridge can boot (a usage error; the message names
    the model, what its configuration declares and the supported text architectures)."""


def _resolver() -> tuple[Any, Mapping[str, Any], str]:
    """TransformerLens' architecture resolver, its table of supported architectures and its version."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES
    from transformer_lens.model_bridge.sources._hf_format import determine_architecture_from_hf_config

    from lmfacts.versions import package_version

    tl_version = package_version("transformer_lens") or "unknown version"  # None: a source checkout
    return determine_architecture_from_hf_config, SUPPORTED_ARCHITECTURES, tl_version


def supported_text_architectures() -> dict[str, list[str]]:
    """The HF classes TransformerBridge supports that lmfacts' claims can run on, by kind.

    Returns ``{"encoders": [...ForMaskedLM], "decoders": [...ForCausalLM / LMHeadModel]}``, each sorted
    case-insensitively (vision, audio and sequence-to-sequence classes are left out: no claim here
    applies to them). Imports transformer_lens (several seconds on a cold start).
    """
    _, table, _ = _resolver()
    names = sorted((n for n in table if n not in ENCODER_DECODER_ALIASES), key=str.lower)
    return {"encoders": [n for n in names if n.endswith(_ENCODER_SUFFIXES)],
            "decoders": [n for n in names if n.endswith(_DECODER_SUFFIXES)]}


#: Bridge architecture names that end like a decoder's but boot an encoder-decoder (``T5WithLMHeadModel`` is
#: the legacy name of ``T5ForConditionalGeneration``): never offered as decoders.
ENCODER_DECODER_ALIASES = frozenset({"T5WithLMHeadModel"})


def encoder_decoder_evidence(config: Mapping[str, Any], *, class_default: bool = True) -> str | None:
    """Why the HF config dict ``config`` describes an encoder-decoder (sequence-to-sequence) model, or None.

    The evidence is the config's own ``is_encoder_decoder`` when it states one (T5, BART, Marian, Pegasus,
    … save ``true``), else the default of transformers' configuration class for its ``model_type`` (a
    hand-written config that omits the key), else a declared architecture in
    :data:`ENCODER_DECODER_ALIASES`. Reads no weights; imports transformers' config mapping only, and not
    even that with ``class_default=False`` (transformers 5 imports torch with it: ``claims show`` must not).
    """
    declared = [a for a in (config.get("architectures") or []) if isinstance(a, str)]
    stated = config.get("is_encoder_decoder")
    if isinstance(stated, bool):
        return "is_encoder_decoder: true" if stated else None
    model_type = config.get("model_type")
    if class_default and isinstance(model_type, str):
        try:
            from transformers import CONFIG_MAPPING

            config_cls = CONFIG_MAPPING[model_type]
            if bool(getattr(config_cls(), "is_encoder_decoder", False)):
                return f"model_type {model_type!r}: transformers' {config_cls.__name__} is an encoder-decoder"
        except Exception:  # noqa: BLE001 - an unknown or odd model_type: no evidence either way
            pass
    aliased = [a for a in declared if a in ENCODER_DECODER_ALIASES]
    return f"architectures {aliased} (an encoder-decoder)" if aliased else None


def architectures_text() -> str:
    """The text architectures TransformerBridge boots (:func:`supported_text_architectures`), as the usage errors
    list them, with what lmfacts still refuses among the decoders (:func:`check_bridge_sublayers`,
    :func:`check_bridge_hooks_fire`: blocks without attention/MLP hook points, or hooks that never fire)."""
    _, _, version = _resolver()
    kinds = supported_text_architectures()
    return (f"Supported encoders: {', '.join(kinds['encoders'])}.\n"
            f"Decoders TransformerBridge boots: {', '.join(kinds['decoders'])}. Of these, lmfacts refuses at load, "
            f"naming what is missing, those whose blocks lack attention and MLP hook points or never fire them "
            f"(state-space and recurrent mixers such as Mamba and RWKV, hybrids' state-space blocks; "
            f"transformer_lens {version}'s OpenAI GPT adapter).")


def encoder_decoder_message(model: str, evidence: str, where: str, stacks: str = "") -> str:
    """The usage-error text for ``model``, an encoder-decoder (``evidence`` read at ``where``)."""
    booted = f" TransformerBridge boots it as {stacks}." if stacks else ""
    return (f"model {model!r} cannot be run: it is an encoder-decoder (sequence-to-sequence) model ({where}: "
            f"{evidence}).{booted} Every lmfacts claim measures one residual stream, blocks.{{l}} of a "
            "single stack fed the prompt (a causal decoder or a masked-LM encoder); an encoder-decoder has two "
            "stacks (the decoder reads the encoder through cross-attention), and no claim here says which one "
            "a finding is about.\n"
            f"{architectures_text()}\n"
            f"Remove --model {model}.")


def check_bridge_single_stack(model: str, bridge: Any) -> None:
    """Raise :class:`UnsupportedArchitectureError` when the booted TransformerBridge ``bridge`` has no single
    stack of blocks (``bridge.blocks``), which every claim hooks (``blocks.{l}.hook_resid_post``).

    The configuration checks (:func:`check_config_supported`) catch encoder-decoders before any weight is
    read where the config is readable here; this is the check after booting, for what they cannot see (a
    hub model without a cached config, ``--trust-remote-code``). The message names the model, the adapter
    and the stacks the bridge has instead (``encoder_blocks``, ``decoder_blocks``). A single stack is then
    checked for the probe's sublayer hooks (:func:`check_bridge_sublayers`). Returns None.
    """
    if hasattr(bridge, "blocks"):
        check_bridge_sublayers(model, bridge)
        return
    stacks = [name for name, _ in bridge.named_children() if name.endswith("blocks")]
    adapter = type(getattr(bridge, "adapter", None)).__name__
    where = f"TransformerBridge {adapter}"
    if stacks:
        raise UnsupportedArchitectureError(encoder_decoder_message(
            model, f"stacks {', '.join(stacks)} and no 'blocks'", where,
            stacks=f"{adapter} with {', '.join(stacks)}"))
    raise UnsupportedArchitectureError(
        f"model {model!r} cannot be run: TransformerBridge booted it as {adapter}, which has no stack of "
        "transformer blocks ('blocks'); every lmfacts claim hooks blocks.{l}.hook_resid_post.")


#: The hooks the shared probe pass sets on every block ``blocks.{l}.…`` (lmfacts/probe/probe.py ``_hooks``):
#: a block without them (a state-space or recurrent mixer instead of attention + MLP) cannot be measured.
PROBE_BLOCK_HOOKS = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "mlp.hook_pre", "hook_resid_post")


def _block_ranges(blocks: list[int]) -> str:
    """``[0, 1, 2, 5]`` → ``"0–2, 5"``."""
    runs: list[list[int]] = []
    for b in blocks:
        if runs and b == runs[-1][1] + 1:
            runs[-1][1] = b
        else:
            runs.append([b, b])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in runs)


def _blocks_lacking(present: set[str], n_layers: int) -> dict[str, list[int]]:
    """``{hook: [blocks]}``: for each of :data:`PROBE_BLOCK_HOOKS`, the blocks whose ``blocks.{l}.<hook>`` is not in
    ``present`` (hook names); empty when every block has every hook."""
    lacking: dict[str, list[int]] = {}
    for i in range(n_layers):
        for h in PROBE_BLOCK_HOOKS:
            if f"blocks.{i}.{h}" not in present:
                lacking.setdefault(h, []).append(i)
    return lacking


def check_bridge_sublayers(model: str, bridge: Any) -> None:
    """Raise :class:`UnsupportedArchitectureError` when some block of the booted TransformerBridge ``bridge``
    lacks a hook of :data:`PROBE_BLOCK_HOOKS` (Mamba, RWKV, a hybrid's state-space blocks: the bridge boots
    them, but their blocks mix tokens with a recurrent mixer, not attention + MLP).

    Measured on the bridge's hook table (``bridge.hook_dict``), not read off the architecture's name. The
    message names ``model``, the adapter, the blocks and hooks missing, the sublayer hooks those blocks have
    instead (``hook_mixer_out``…) and what to do; without it every claim errored with a TransformerLens
    ``KeyError: "Hook name 'blocks.0.hook_attn_out' does not exist on this model."`` traceback. Returns None.
    """
    names = set(getattr(bridge, "hook_dict", {}) or {})
    n_layers = len(bridge.blocks)
    missing = _blocks_lacking(names, n_layers)
    if not missing:
        check_bridge_hooks_fire(model, bridge)
        return
    first = min(min(v) for v in missing.values())
    prefix = f"blocks.{first}."
    instead = sorted(n[len(prefix):] for n in names
                     if n.startswith(prefix) and n.count(".") == 2 and n.endswith("_out")
                     and n[len(prefix):] not in PROBE_BLOCK_HOOKS and n[len(prefix):] != "hook_out")
    adapter = type(getattr(bridge, "adapter", None)).__name__
    lacks = "; ".join(f"{h} at block(s) {_block_ranges(b)}" for h, b in missing.items())
    has = f" (block {first} has {', '.join(instead)} instead)" if instead else ""
    raise UnsupportedArchitectureError(
        f"model {model!r} cannot be run: TransformerBridge booted it as {adapter}, whose blocks are not "
        f"attention + MLP blocks: of the {n_layers} blocks, it lacks {lacks}{has}. Every lmfacts claim reads "
        "one shared probe pass that hooks each block's attention output, MLP output and MLP pre-activation "
        f"(blocks.{{l}}.{', blocks.{l}.'.join(PROBE_BLOCK_HOOKS)}); a state-space or recurrent mixer (Mamba, "
        f"RWKV, the SSM layers of a hybrid) has none of them. Remove --model {model}, or run a transformer "
        "(attention + MLP) model.")


def check_bridge_hooks_fire(model: str, bridge: Any) -> None:
    """Raise :class:`UnsupportedArchitectureError` when a hook of :data:`PROBE_BLOCK_HOOKS` that the booted
    ``bridge`` declares never fires on a forward pass (its adapter maps it to a module the HF forward never
    calls: TransformerLens 4.3's OpenAIGPT adapter, post-LN GPT-1, never fires ``blocks.{l}.hook_resid_post``).

    Measured on one forward pass of two token ids 0 (``inference_mode``, no logits kept). Without this the
    probe's statistics at the unfired hooks were empty: RS-1 errored with ``median_kurtosis=nan``, the logit
    lens with "the last block never ran", others judged the empty point. A forward pass that raises is left
    to the claims (nothing is decided here). Returns None.
    """
    import torch

    fired: set[str] = set()
    n_layers = len(bridge.blocks)
    names = [f"blocks.{i}.{h}" for i in range(n_layers) for h in PROBE_BLOCK_HOOKS]

    def mark(name: str) -> Any:
        def hook(x: Any, hook: Any) -> None:
            fired.add(name)  # by the name hooked (an alias's HookPoint may carry its target's name)
        return hook

    device = getattr(getattr(bridge, "cfg", None), "device", None) or "cpu"
    tokens = torch.zeros((1, 2), dtype=torch.long, device=device)
    try:
        with torch.inference_mode():
            bridge.run_with_hooks(tokens, fwd_hooks=[(n, mark(n)) for n in names], return_type=None)
    except Exception:  # noqa: BLE001 - a model that cannot run two tokens fails in its claims, with their context
        return
    silent = _blocks_lacking(fired, n_layers)
    if not silent:
        return
    adapter = type(getattr(bridge, "adapter", None)).__name__
    lacks = "; ".join(f"{h} at block(s) {_block_ranges(b)}" for h, b in silent.items())
    raise UnsupportedArchitectureError(
        f"model {model!r} cannot be run: TransformerBridge booted it as {adapter}, which declares hooks that "
        f"never fire on a forward pass: {lacks} (the adapter maps them to no module the model's forward runs). "
        "Every lmfacts claim reads one shared probe pass through these hooks; statistics at a hook that never "
        f"fires would be empty. Remove --model {model}, or use a transformer_lens version whose adapter for "
        "this architecture fires them.")


def bridge_architecture(config: Mapping[str, Any]) -> str | None:
    """The architecture TransformerBridge would boot for the HF config dict ``config`` (the key of its
    adapter table, e.g. ``"RobertaForMaskedLM"``), or None when it supports none of what the config
    declares (``architectures``, ``model_type``). Reads no weights; imports transformer_lens."""
    resolve, _, _ = _resolver()
    try:
        return str(resolve(types.SimpleNamespace(**dict(config))))
    except ValueError:
        return None


def unsupported_message(model: str, config: Mapping[str, Any], where: str) -> str:
    """The usage-error text for ``model`` whose config (read at ``where``) names no supported architecture."""
    _, _, version = _resolver()
    declared = list(config.get("architectures") or [])
    return (f"model {model!r} cannot be run: its architecture ({where}: architectures {declared or 'none'}, "
            f"model_type {config.get('model_type')!r}) is not supported by TransformerBridge "
            f"(transformer_lens {version}), which lmfacts hooks every model through.\n"
            f"{architectures_text()}\n"
            f"Remove --model {model} or convert the model to one of these architectures.")


def check_config_supported(model: str, config: Mapping[str, Any], where: str) -> str:
    """Return the bridge architecture of ``config`` (see :func:`bridge_architecture`).

    Raises:
        UnsupportedArchitectureError: TransformerBridge supports none of the architectures ``config``
            declares, or ``config`` is an encoder-decoder (:func:`encoder_decoder_evidence`: T5, BART …,
            which the bridge boots with two stacks and no claim can measure); the message names ``model``,
            ``where`` the config was read and the supported text architectures.
    """
    arch = bridge_architecture(config)
    if arch is None:
        raise UnsupportedArchitectureError(unsupported_message(model, config, where))
    evidence = encoder_decoder_evidence(config)
    if evidence is not None:
        raise UnsupportedArchitectureError(encoder_decoder_message(model, evidence, where))
    return arch


def check_dir_supported(model: str, model_dir: Path | str) -> str | None:
    """:func:`check_config_supported` on ``model_dir/config.json``; None (nothing checked) when that file
    is absent or not a JSON object (the loader then reports what is wrong with the directory).

    Raises UnsupportedArchitectureError as :func:`check_config_supported` does.
    """
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return check_config_supported(model, config, str(path))


def preflight(models: tuple[str, ...] | list[str], *, revisions: tuple[str, ...] | list[str] = (),
              trust_remote_code: bool = False) -> None:
    """Check, from configuration files alone, that every model in ``models`` has a supported architecture.

    Only what is readable here without a network or a conversion is checked: a local HF directory's
    ``config.json``, a hub model's ``config.json`` in the local HF cache (at each of ``revisions``, or the
    default revision) and a GGUF file not yet converted (:func:`check_gguf`: header and tensor index).
    A local directory must also hold a tokenizer file (:func:`check_tokenizer_files`).
    Tiny and packaged models and hub models without a cached config are skipped; nothing is checked
    with ``trust_remote_code`` (remote code may register an architecture). transformer_lens is imported
    only when some configuration is checked.

    Raises:
        UnsupportedArchitectureError: for the first model whose architecture is not supported (the
            message names it and the supported architectures).
        UnreadableModelFileError: a GGUF file that is truncated, corrupt or not GGUF.
        UnusableTokenizerError: a local model directory without any tokenizer file.
        UnreadableModelFileError: also a local directory's config.json, tokenizer JSON or safetensors file
            that cannot be read (:func:`check_model_files`).
    """
    from lmfacts.models import hub
    from lmfacts.models.names import UnknownModelError, parse_model_name

    if trust_remote_code:
        return
    for name in models:
        try:
            ref = parse_model_name(name)
        except UnknownModelError:
            continue  # reported by the option checks
        if ref.kind == "local-dir":
            check_model_files(name, ref.target)
            check_dir_supported(name, ref.target)
            check_tokenizer_files(name, ref.target)
        elif ref.kind == "gguf-file" and not gguf_conversion_cached(ref.target):
            check_gguf(name, ref.target)
        elif ref.kind == "hub":
            for rev in tuple(revisions) or (None,):
                cached = hub.cached_config_path(ref.target, rev)
                if cached is not None:
                    check_dir_supported(name, cached.parent)


class UnreadableModelFileError(ModelUnavailableError):
    """A model file cannot be read (truncated, corrupt, or not the format its name says); a usage error
    whose message names the file, its size and the reader's complaint."""


#: JSON files of a model directory that transformers parses when it loads the model or its tokenizer.
MODEL_JSON_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.json", "generation_config.json", "model.safetensors.index.json")


def check_model_files(model: str, model_dir: Path | str) -> None:
    """Raise :class:`UnreadableModelFileError` when a file of the local model directory ``model_dir`` that
    loading reads is truncated or corrupt: one of :data:`MODEL_JSON_FILES` that is present but not UTF-8
    JSON, or a ``*.safetensors`` file whose header the safetensors reader rejects (a truncated download:
    'incomplete metadata, file not fully covered'). Reads the JSON files and each safetensors header only
    (memory-mapped, no tensor data): well under a second. The message names the file, its size and the
    reader's complaint. Without this, each fails deep inside transformers, one traceback per claim (E)."""
    import json

    d = Path(model_dir)

    def unreadable(path: Path, what: str, exc: BaseException) -> UnreadableModelFileError:
        return UnreadableModelFileError(
            f"model {model!r}: {path} is not a readable {what} ({path.stat().st_size} bytes; "
            f"{type(exc).__name__}: {exc}). It is truncated (an interrupted copy or download?) or corrupt: "
            "save or download the model again, or pass another model.")

    for name in MODEL_JSON_FILES:
        path = d / name
        if path.is_file():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                raise unreadable(path, "JSON file", exc) from None
    weights = sorted(d.glob("*.safetensors"))
    if weights:
        from safetensors import safe_open

        for path in weights:
            try:
                with safe_open(str(path), "pt"):
                    pass
            except Exception as exc:  # noqa: BLE001 - any reader failure means the same to the user
                raise unreadable(path, "safetensors file", exc) from None


def unreadable_gguf(model: str, path: Path | str, exc: BaseException) -> UnreadableModelFileError:
    """The error for a GGUF file whose header or tensor index the reader rejects (``exc``): it names the
    model, the file's size and the reader's complaint, and says what to do."""
    size = Path(path).stat().st_size
    return UnreadableModelFileError(
        f"model {model!r} is not a readable GGUF file ({size} bytes; the GGUF reader says "
        f"{type(exc).__name__}: {exc}). It is truncated (an interrupted download?), corrupt or not a GGUF "
        "file: download or convert it again, or pass another model.")


def _gguf_header_architecture(path: Path) -> str | None:
    """``general.architecture`` of a GGUF file, read with ``gguf.GGUFReader`` (which also checks that every
    tensor's data lies inside the file). Raises whatever the reader raises for an unreadable file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    field = reader.fields.get("general.architecture")
    return bytes(field.parts[field.data[0]]).decode() if field is not None else None


def check_gguf(model: str, path: Path | str) -> str:
    """Check that the GGUF file ``path`` can be converted and booted; return its bridge architecture.

    Reads the header and tensor index only (memory-mapped, no tensor data is dequantised): seconds for a
    multi-GB file. Three questions, each a clear error naming ``model``:

    1. is it a complete GGUF file (the magic, the metadata, every tensor's data inside the file)?
    2. does transformers' GGUF loader convert its ``general.architecture``?
    3. does TransformerBridge support the architecture the conversion yields (:func:`check_config_supported`)?

    Raises:
        UnreadableModelFileError: (1) fails (a truncated download, a corrupt or non-GGUF file).
        UnsupportedArchitectureError: (2) or (3) fails; the message lists what is supported.
    """
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES, load_gguf_checkpoint

    path = Path(path)
    try:
        arch = _gguf_header_architecture(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure means the same to the user
        raise unreadable_gguf(model, path, exc) from None
    try:
        parsed = load_gguf_checkpoint(str(path), return_tensors=False)
    except ValueError as exc:
        if "is not supported" in str(exc):
            raise UnsupportedArchitectureError(
                f"model {model!r}: its GGUF architecture {arch!r} (general.architecture) is not one that "
                f"transformers' GGUF loader converts, which lmfacts reads GGUF files with. Convertible: "
                f"{', '.join(sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {'general', 'tokenizer'}))}. Pass the model as a Hugging Face "
                "directory instead.") from None
        raise UnreadableModelFileError(f"model {model!r}: the GGUF metadata cannot be read ({exc})") from None
    config = dict(parsed.get("config") or {})
    return check_config_supported(model, config, f"GGUF header of {path.name}, general.architecture {arch!r}")


def gguf_conversion_cached(path: Path | str) -> bool:
    """True when ``path`` (a GGUF file) already has a complete cached conversion (it was read before)."""
    from lmfacts.models import gguf_cache

    try:
        return (gguf_cache.converted_dir_for(Path(path)) / gguf_cache.META_FILE).is_file()
    except OSError:
        return False


#: Files one of which a Hugging Face model directory needs for a working tokenizer (fast tokenizer JSON,
#: SentencePiece / tiktoken models, BPE / WordPiece vocabularies).
TOKENIZER_FILE_PATTERNS = ("tokenizer.json", "*.model", "*.tiktoken", "vocab.json", "vocab.txt", "merges.txt",
                           "vocab.*", "*.vocab")
#: Probe text for :func:`check_tokenizer_spells_text`: ordinary words, digits, punctuation.
PROBE_TEXT = "The quick brown fox jumps over the lazy dog, and 42 other animals watched it happen."


class UnusableTokenizerError(ModelUnavailableError):
    """The model has no tokenizer lmfacts can feed text through (files missing, or a degenerate tokenizer)."""


def check_tokenizer_files(model: str, model_dir: Path | str) -> None:
    """Raise :class:`UnusableTokenizerError` when the local model directory ``model_dir`` holds no tokenizer
    file at all (:data:`TOKENIZER_FILE_PATTERNS`): ``AutoTokenizer`` then either fails deep inside
    transformers or, for BERT and GPT-2, builds an empty vocabulary that maps every word to one id, and
    every activation claim would measure that. Nothing is raised when some tokenizer file is present."""
    d = Path(model_dir)
    if any(any(d.glob(pattern)) for pattern in TOKENIZER_FILE_PATTERNS):
        return
    present = sorted(p.name for p in d.iterdir())[:12]
    raise UnusableTokenizerError(
        f"model {model!r}: {d} has no tokenizer files (none of {', '.join(TOKENIZER_FILE_PATTERNS)}; it holds "
        f"{', '.join(present) or 'nothing'}). lmfacts feeds the model text, so it needs the model's own tokenizer: "
        f"save it next to the weights (tokenizer.save_pretrained({str(d)!r})) or copy its tokenizer files there.")


def check_tokenizer_encodes_text(model: str, tokenizer: Any) -> None:
    """Raise :class:`UnusableTokenizerError` when ``tokenizer`` raises on ordinary text (:data:`PROBE_TEXT`).

    A ``tokenizers`` WordLevel (or WordPiece) model saved without an unknown token cannot encode a word outside
    its vocabulary: every call raises ``Exception: WordLevel error: Missing [UNK] token from the vocabulary``,
    which reached the user as a traceback from inside transformers at load, and would have at every prompt. The
    message names the model, the tokenizer, what it raised and what to fix. None / not callable: nothing checked.
    """
    if tokenizer is None or not callable(tokenizer):
        return
    try:
        tokenizer(PROBE_TEXT, add_special_tokens=False)
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for a missing unknown token
        kind = ""
        try:
            spec = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
            if spec.get("type") in ("WordLevel", "WordPiece") and spec.get("unk_token") not in (spec.get("vocab") or {}):
                kind = (f" Its {spec['type']} vocabulary has no unknown token ({spec.get('unk_token')!r} is not in it), "
                        "so any word outside the vocabulary is an error: add that token to the vocabulary in "
                        "tokenizer.json (model.vocab) or set model.unk_token to one that is there.")
        except Exception:  # noqa: BLE001 - not a tokenizers backend: the exception alone says what happened
            pass
        raise UnusableTokenizerError(
            f"model {model!r}: its tokenizer ({type(tokenizer).__name__}, from "
            f"{getattr(tokenizer, 'name_or_path', '?')!r}) cannot encode ordinary text: {PROBE_TEXT[:30]!r}… raised "
            f"{type(exc).__name__}: {exc}.{kind} lmfacts feeds the model text, so it needs a tokenizer that encodes "
            "any text (the model's own, saved next to its weights).") from None


def check_tokenizer_fits_embedding(model: str, tokenizer: Any, d_vocab: int) -> None:
    """Raise :class:`UnusableTokenizerError` when ordinary text (:data:`PROBE_TEXT`) tokenises to an id the
    model cannot embed (``>= d_vocab``, the embedding's rows): the tokenizer's own vocabulary is larger than
    the model's embedding matrix, so it is not the tokenizer these weights were trained with (a directory
    with another model's tokenizer files, a config ``vocab_size`` cut below the tokenizer's).

    Added tokens past the embedding are not judged here (the loader removes special ones it can); only ids
    that plain text reaches. None / a tokenizer that cannot be called: nothing is checked.
    """
    if tokenizer is None or not callable(tokenizer):
        return
    try:
        ids = [int(i) for i in tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]]
    except Exception:  # noqa: BLE001 - a tokenizer that cannot run is check_tokenizer_spells_text's business
        return
    outside = sorted({i for i in ids if not 0 <= i < d_vocab})
    if not outside:
        return
    added = {int(i) for i in (getattr(tokenizer, "added_tokens_decoder", None) or {})}
    regular = sum(1 for i in (tokenizer.get_vocab() or {}).values() if int(i) >= d_vocab and int(i) not in added) \
        if hasattr(tokenizer, "get_vocab") else len(outside)
    names = tokenizer.convert_ids_to_tokens(outside[:5]) if hasattr(tokenizer, "convert_ids_to_tokens") else outside
    raise UnusableTokenizerError(
        f"model {model!r}: its tokenizer ({type(tokenizer).__name__}, {len(tokenizer)} tokens, from "
        f"{getattr(tokenizer, 'name_or_path', '?')!r}) turns ordinary text into ids the model cannot embed: "
        f"{PROBE_TEXT[:30]!r}… gives ids {outside[:5]} ({names}), but the embedding has {d_vocab} rows "
        f"({regular} of the tokenizer's regular tokens lie past it). The tokenizer does not belong to these "
        "weights: save the model's own tokenizer next to them, or fix the config's vocab_size.")


def check_tokenizer_spells_text(model: str, tokenizer: Any, d_vocab: int) -> None:
    """Raise :class:`UnusableTokenizerError` when ``tokenizer`` is degenerate: its vocabulary is less than
    half the model's ``d_vocab`` rows *and* it cannot spell ordinary text (:data:`PROBE_TEXT`): at least
    half of its non-special ids are the unknown token, or they take at most two distinct values.

    Both conditions must hold, so a tokenizer of a model trained on other text (DNA, code) or one with a
    padded embedding passes; an empty-vocabulary BERT/GPT-2 tokenizer built from a directory without
    vocabulary files (every word → ``[UNK]``) does not. None / no ``__len__``: nothing is checked.
    """
    if tokenizer is None or not hasattr(tokenizer, "__len__") or len(tokenizer) * 2 >= d_vocab:
        return
    ids = list(tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"])
    specials = {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []) if i is not None}
    unk = getattr(tokenizer, "unk_token_id", None)
    content = [i for i in ids if i not in specials or i == unk]
    n_unk = sum(1 for i in content if unk is not None and i == unk)
    if content and n_unk * 2 < len(content) and len(set(content)) > 2:
        return
    raise UnusableTokenizerError(
        f"model {model!r}: its tokenizer ({type(tokenizer).__name__}, {len(tokenizer)} tokens, from "
        f"{getattr(tokenizer, 'name_or_path', '?')!r}) cannot spell text: {PROBE_TEXT[:30]!r}… → {len(ids)} ids, "
        f"{n_unk} of them the unknown token, {len(set(content))} distinct, for a model with {d_vocab} embedding "
        "rows. Its vocabulary files are missing or unreadable: save the model's tokenizer next to its weights.")
