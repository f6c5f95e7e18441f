"""A decoder whose tokenizer declares no BOS token: TransformerBridge (configure_tokenizer) sets ``bos_token`` to
the EOS and prepends it (Llama adapter: ``default_prepend_bos``), so every prompt starts with ``</s>``. lmfacts
keeps the bridge's convention but says so: ``ModelInfo.bos_note``, a line in ``notes``, the ``prepend_bos``
convention of every prompt claim (:func:`bos_convention`). Was: ``prepends_bos: true, bos_token_id: 0`` and
"BOS id 0 is the first token of the prompts", as for a model with a real BOS.

Models are built in the test: a tiny random Llama saved with a byte-level tokenizer that declares EOS only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def eos_only_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"</s>": 0}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="</s>")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=64, max_position_embeddings=64, bos_token_id=None,
                      eos_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("bos") / "tiny-llama-eos-only"
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def test_eos_standing_in_for_bos_is_named(eos_only_dir: Path) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.models.metadata import bos_convention

    lm = load_model(str(eos_only_dir))
    info = lm.info
    ids = lm.bridge.to_tokens("hi", move_to_device=False)[0].tolist()
    assert ids[0] == 0 and info.prepends_bos and info.bos_token_id == 0  # the bridge's convention, kept
    assert info.bos_note is not None and "declares no BOS" in info.bos_note and "'</s>'" in info.bos_note
    assert any("declares no BOS" in n for n in info.notes)
    assert "declares no BOS" in bos_convention(info) and "declares no BOS" in bos_convention(info.to_dict())


def test_a_declared_bos_gets_no_note() -> None:
    from lmfacts.models.loading import build_tiny_model

    info = build_tiny_model("tiny-llama").info  # BOS = EOS = <|endoftext|>, declared (GPT-2 style)
    assert info.prepends_bos and info.bos_note is None
    assert not any("declares no BOS" in n for n in info.notes)


class _Declares:
    """A tokenizer class whose constructor declares a BOS (GPT2Tokenizer: bos_token='<|endoftext|>')."""

    def __init__(self, bos_token: str = "<|endoftext|>") -> None:
        self.bos_token = self.eos_token = bos_token
        self.bos_token_id = 0
        self.init_kwargs: dict[str, object] = {}  # loaded from a tokenizer_config.json that omits it


class _DeclaresNone(_Declares):
    def __init__(self, bos_token: str | None = None) -> None:
        super().__init__("</s>")


def test_declared_means_init_kwargs_then_the_class_default() -> None:
    from lmfacts.models.metadata import bridge_substituted_bos

    assert bridge_substituted_bos(_Declares()) is None  # the class default declares it
    assert "'</s>' (id 0)" in (bridge_substituted_bos(_DeclaresNone()) or "")
    stated = _DeclaresNone()
    stated.init_kwargs = {"bos_token": "</s>"}  # stated in tokenizer_config.json: a real BOS equal to EOS
    assert bridge_substituted_bos(stated) is None
    other = _DeclaresNone()
    other.bos_token = "<s>"  # BOS differs from EOS: not the bridge's substitute
    assert bridge_substituted_bos(other) is None
    assert bridge_substituted_bos(None) is None


def test_an_encoders_bos_is_named_as_its_class_token(tmp_path: Path) -> None:
    """RoBERTa's "BOS" is its class token <s>: the prepend_bos convention says so (minilm-l6: '[CLS]' (id 101))."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    from lmfacts.models.loading import build_tiny_model, load_model
    from lmfacts.models.metadata import bos_convention
    from tests.models.test_encoder_inputs import _byte_bpe_roberta_tokenizer

    tok = _byte_bpe_roberta_tokenizer()
    cfg = RobertaConfig(vocab_size=len(tok), max_position_embeddings=66, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, type_vocab_size=1, num_hidden_layers=2, hidden_size=32,
                        num_attention_heads=2, intermediate_size=64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        RobertaForMaskedLM(cfg).save_pretrained(str(tmp_path))
    tok.save_pretrained(str(tmp_path))
    info = load_model(str(tmp_path)).info
    assert info.is_encoder and info.bos_token_id == 0
    assert "the encoder's class token '<s>' (id 0)" in bos_convention(info)
    bert = build_tiny_model("tiny-bert").info  # the byte tokenizer: no class token, BOS <|endoftext|>
    assert "no class token; its BOS '<|endoftext|>' (id 0)" in bos_convention(bert)
