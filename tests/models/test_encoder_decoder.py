"""Encoder-decoders (T5, BART, …): TransformerBridge boots them, with ``encoder_blocks`` and ``decoder_blocks``
and no ``blocks``; every claim hooks ``blocks.{l}``. They are a usage error naming what is unsupported, from the
config before any weight is read, and, where no config could be read first (``--trust-remote-code``), a clear
load failure per test instead of 30 ``KeyError: 'blocks.0.hook_resid_post'`` tracebacks.

Every model here is built in the test: random weights, 2 layers, d_model 32, the byte tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _save_seq2seq(out: Path, config: object) -> Path:
    from lmfacts.models.tiny import load_byte_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModelForSeq2SeqLM.from_config(config)
    model.save_pretrained(str(out))
    load_byte_tokenizer().save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import T5Config

    cfg = T5Config(vocab_size=257, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=0)
    return _save_seq2seq(tmp_path_factory.mktemp("s2s") / "tiny-t5", cfg)


@pytest.fixture(scope="module")
def bart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BartConfig

    cfg = BartConfig(vocab_size=257, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                     decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                     pad_token_id=0, bos_token_id=0, eos_token_id=0, decoder_start_token_id=0)
    return _save_seq2seq(tmp_path_factory.mktemp("s2s") / "tiny-bart", cfg)


def test_config_of_an_encoder_decoder_is_refused(t5_dir: Path, bart_dir: Path) -> None:
    """Both TransformerBridge architectures (it boots them), refused from the config: stated or by model_type."""
    from lmfacts.models.support import (
        UnsupportedArchitectureError,
        bridge_architecture,
        check_config_supported,
    )

    for d, arch in ((t5_dir, "T5ForConditionalGeneration"), (bart_dir, "BartForConditionalGeneration")):
        config = json.loads((d / "config.json").read_text())
        assert bridge_architecture(config) == arch  # the bridge would boot it
        with pytest.raises(UnsupportedArchitectureError, match="encoder-decoder") as err:
            check_config_supported(str(d), config, "cfg.json")
        assert "is_encoder_decoder: true" in str(err.value) and "Supported encoders: BertForMaskedLM" in str(err.value)
        config.pop("is_encoder_decoder")  # a hand-written config: transformers' class default decides
        with pytest.raises(UnsupportedArchitectureError, match=f"model_type '{config['model_type']}'"):
            check_config_supported(str(d), config, "cfg.json")
    llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    assert check_config_supported("x", llama, "cfg.json") == "LlamaForCausalLM"
    bert = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "is_encoder_decoder": False}
    assert check_config_supported("x", bert, "cfg.json") == "BertForMaskedLM"


def test_legacy_t5_name_is_not_offered_as_a_decoder() -> None:
    from lmfacts.models.support import encoder_decoder_evidence, supported_text_architectures

    kinds = supported_text_architectures()
    assert "T5WithLMHeadModel" not in kinds["decoders"] and "GPT2LMHeadModel" in kinds["decoders"]
    assert encoder_decoder_evidence({"architectures": ["T5WithLMHeadModel"]}) is not None


def test_booted_bridge_without_blocks_is_refused(bart_dir: Path) -> None:
    """After booting: the check that catches what no config check saw names the stacks the bridge has."""
    from transformer_lens.model_bridge import TransformerBridge

    from lmfacts.models.loading import build_tiny_model
    from lmfacts.models.support import UnsupportedArchitectureError, check_bridge_single_stack

    bridge = TransformerBridge.boot_transformers(str(bart_dir), device="cpu")
    with pytest.raises(UnsupportedArchitectureError) as err:
        check_bridge_single_stack("my-bart", bridge)
    msg = str(err.value)
    assert "'my-bart'" in msg and "encoder_blocks" in msg and "decoder_blocks" in msg and "encoder-decoder" in msg
    check_bridge_single_stack("tiny-gpt2", build_tiny_model("tiny-gpt2").bridge)  # a decoder passes


def test_encoder_decoder_is_a_usage_error_before_any_test(t5_dir: Path, tmp_path: Path) -> None:
    proc, seconds = run_pytest("claims/", "--model", str(t5_dir), "-q", report_dir=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]
    assert f"model {str(t5_dir)!r} cannot be run: it is an encoder-decoder" in out
    assert "Traceback" not in out and "KeyError" not in out and not any(tmp_path.iterdir())
    assert seconds < 120, seconds  # transformer_lens import only (inflated by shared CPUs)


def test_encoder_decoder_without_config_check_fails_each_test_clearly(bart_dir: Path, tmp_path: Path) -> None:
    """--trust-remote-code skips the config check (remote code may register an architecture): the model boots
    and the check after booting stops each test with the same message, no traceback, no KeyError."""
    proc, _ = run_pytest("claims/", "--model", str(bart_dir), "--trust-remote-code", "-m", "RN", "-k", "RN-1-",
                         "-q", report_dir=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert "it is an encoder-decoder" in out and "encoder_blocks, decoder_blocks" in out, out[-3000:]
    assert "KeyError" not in out and "Traceback" not in out, out[-3000:]


def test_claims_show_says_an_encoder_decoder_cannot_run(t5_dir: Path) -> None:
    """``claims show --model`` (config only, ~1 s) says what a run would: not runnable, with the config's evidence."""
    import subprocess
    import sys

    from tests.helpers import REPO

    proc = subprocess.run([sys.executable, "-m", "lmfacts", "claims", "show", "RN-1", "--model", str(t5_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "runnable:      no: an encoder-decoder" in proc.stdout and "is_encoder_decoder: true" in proc.stdout
    llama = subprocess.run([sys.executable, "-m", "lmfacts", "claims", "show", "RN-1", "--model", "tiny-llama"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert llama.returncode == 0 and "runnable:" not in llama.stdout
    script = ("import sys; from lmfacts.claims_cli import _encoder_decoder; from lmfacts.models.names import "
              f"parse_model_name as p; print(_encoder_decoder(p({str(t5_dir)!r})) is not None, 'torch' in sys.modules)")
    light = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert light.stdout.split() == ["True", "False"], light.stdout + light.stderr  # config only: torch not imported


def test_the_architecture_list_says_which_booted_decoders_lmfacts_still_refuses() -> None:
    """The usage errors list what TransformerBridge boots; among its decoders are state-space and recurrent models
    (Mamba, RWKV) that lmfacts refuses at load (their blocks have no attention/MLP hooks), so the list must not
    call them supported without saying so."""
    from lmfacts.models.support import architectures_text, supported_text_architectures

    text = architectures_text()
    assert "MambaForCausalLM" in supported_text_architectures()["decoders"]  # what the bridge table offers
    assert "Supported decoders" not in text
    assert "refuses at load" in text and "Mamba" in text and "RWKV" in text
