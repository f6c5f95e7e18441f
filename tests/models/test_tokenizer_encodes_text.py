"""A tokenizer that raises on ordinary text (a ``tokenizers`` WordLevel model saved without an unknown token:
every word outside its vocabulary is ``Exception: WordLevel error: Missing [UNK] token from the vocabulary``) is
refused at load in one paragraph naming the model, what the tokenizer raised and what to fix; it was a
traceback from inside transformers at the setup of every claim. The same vocabulary with an unknown token loads."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

WORDS = "the a of and to in is was for on that with as by it at from".split()


def _wordlevel_llama(root: Path, *, unk: bool) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"[UNK]": 0} if unk else {}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]") if unk else models.WordLevel(vocab))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    cfg = AutoConfig.for_model("llama", vocab_size=len(vocab), num_hidden_layers=1, hidden_size=32,
                               num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
                               max_position_embeddings=64, bos_token_id=None, eos_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg).eval()
    out = root / ("wordlevel-unk" if unk else "wordlevel-no-unk")
    model.save_pretrained(out)
    PreTrainedTokenizerFast(tokenizer_object=tk, **({"unk_token": "[UNK]"} if unk else {})).save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFACTS_CACHE_DIR", str(tmp_path / "lmfacts-cache"))


def test_a_tokenizer_that_raises_on_text_is_refused_naming_the_fix(tmp_path: Path) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.models.support import UnusableTokenizerError

    with pytest.raises(UnusableTokenizerError) as err:
        load_model(str(_wordlevel_llama(tmp_path, unk=False)))
    msg = str(err.value)
    assert "wordlevel-no-unk" in msg and "cannot encode ordinary text" in msg, msg
    assert "Missing [UNK] token" in msg and "WordLevel vocabulary has no unknown token" in msg, msg
    assert "tokenizer.json" in msg, msg


def test_the_same_vocabulary_with_an_unknown_token_loads(tmp_path: Path) -> None:
    from lmfacts.models.loading import load_model

    loaded = load_model(str(_wordlevel_llama(tmp_path, unk=True)))
    assert loaded.bridge.tokenizer("The quick fox")["input_ids"]
    loaded.release()


def test_a_template_adding_a_token_past_the_embedding_names_it_and_the_fix(tmp_path: Path) -> None:
    """A tokenizer whose BOS '<s>' has the id just past the embedding and whose post-processor template adds it
    to every text ('<s> $A'): removing the added token leaves the template adding it, so loading is refused;
    the message said only 'still produces ids [257]', now it names '<s>', the template and what to change."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import AutoConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from lmfacts.models.loading import TokenizerVocabularyError, load_model

    vocab = {"<|endoftext|>": 0}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    n = len(vocab)
    vocab["<s>"] = n
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", n)])
    cfg = AutoConfig.for_model("llama", vocab_size=n, num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                               num_key_value_heads=1, intermediate_size=64, max_position_embeddings=64,
                               bos_token_id=0, eos_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg).eval()
    out = tmp_path / "bos-past-embedding"
    model.save_pretrained(out)
    PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="<|endoftext|>").save_pretrained(out)
    with pytest.raises(TokenizerVocabularyError) as err:
        load_model(str(out))
    msg = str(err.value)
    assert f"ids [{n}] (['<s>'])" in msg and "post-processor" in msg and "remove them from that template" in msg, msg
