"""A local model directory with a truncated or corrupt file that loading reads (config.json, tokenizer.json,
model.safetensors: an interrupted copy or download) is a usage error naming the file, before any test;
it was one JSONDecodeError / SafetensorError traceback per claim (E). Model built here: GPT-2, 2 layers, d 32,
with the byte-level tokenizer of the tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_pytest

torch = pytest.importorskip("torch")


def _save_model(out: Path) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM

    from lmfacts.models.tiny import load_byte_tokenizer

    tok = load_byte_tokenizer()
    cfg = AutoConfig.for_model("gpt2", n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=len(tok),
                               bos_token_id=0, eos_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(("name", "keep", "what"), [("config.json", 40, "JSON file"),
                                                      ("tokenizer.json", 300, "JSON file"),
                                                      ("model.safetensors", 5000, "safetensors file")])
def test_truncated_file_is_named(name: str, keep: int, what: str, tmp_path: Path) -> None:
    from lmfacts.models.support import UnreadableModelFileError, check_model_files

    out = _save_model(tmp_path / "m")
    check_model_files("m", out)  # intact: nothing raised
    _truncate(out / name, keep)
    with pytest.raises(UnreadableModelFileError) as err:
        check_model_files("m", out)
    assert f"{out / name} is not a readable {what} ({keep} bytes;" in str(err.value)


def test_truncated_weights_are_a_usage_error_before_any_test(tmp_path: Path) -> None:
    out = _save_model(tmp_path / "m")
    _truncate(out / "model.safetensors", 5000)
    proc, _ = run_pytest("claims/", "-k", "RN-1", "--model", str(out), "-q", report_dir=tmp_path / "r")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 4, text[-2000:]
    assert "model.safetensors is not a readable safetensors file" in text and "Traceback" not in text


def test_claims_show_on_a_truncated_model_directory_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``claims show --model DIR`` exits 2 naming the file, as pytest does (and as for a corrupt GGUF)."""
    from lmfacts.__main__ import main

    out = _save_model(tmp_path / "m")
    assert main(["claims", "show", "RN-1", "--model", str(out)]) == 0
    capsys.readouterr()
    _truncate(out / "config.json", 40)
    assert main(["claims", "show", "RN-1", "--model", str(out)]) == 2
    assert f"{out / 'config.json'} is not a readable JSON file" in capsys.readouterr().err
