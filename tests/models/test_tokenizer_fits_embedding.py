"""A tokenizer whose ordinary tokens lie past the model's embedding (a 257-token byte tokenizer next to a
Llama whose config says vocab_size 200) is refused at load in one paragraph naming the ids, the rows and what
to fix, instead of every prompt claim erring with a message blaming special tokens; a padded embedding (more
rows than tokens, the common case) loads."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


def _llama_dir(root: Path, vocab_size: int) -> Path:
    """Write a 1-block random Llama with ``vocab_size`` embedding rows and lmfacts' 257-token byte tokenizer."""
    from transformers import AutoConfig, LlamaForCausalLM

    from lmfacts.models.tiny import load_byte_tokenizer

    cfg = AutoConfig.for_model("llama", vocab_size=vocab_size, num_hidden_layers=1, hidden_size=32,
                               num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
                               max_position_embeddings=64, bos_token_id=0, eos_token_id=0,
                               tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg).eval()
    out = root / f"llama-v{vocab_size}"
    model.save_pretrained(out)
    load_byte_tokenizer().save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFACTS_CACHE_DIR", str(tmp_path / "lmfacts-cache"))


def test_tokenizer_larger_than_embedding_is_refused_at_load(tmp_path: Path) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.models.names import ModelUnavailableError

    path = _llama_dir(tmp_path, 200)
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        load_model(str(path))
    assert time.perf_counter() - t0 < 30
    msg = str(err.value)
    assert "cannot embed" in msg and "200 rows" in msg and "221" in msg and "does not belong" in msg, msg
    assert "special tokens" not in msg


def test_padded_embedding_loads(tmp_path: Path) -> None:
    from lmfacts.models.loading import load_model

    loaded = load_model(str(_llama_dir(tmp_path, 320)))
    assert int(loaded.bridge.cfg.d_vocab) == 320
    loaded.release()
