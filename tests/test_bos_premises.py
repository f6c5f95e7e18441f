"""BOS applicability is measured on the model: whether prompts really start with BOS, and whether
the BOS residual can be compared at all (an all-zero BOS embedding row)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load_report, run_pytest


def _zero_bos_llama(path: Path) -> Path:
    """A tiny random Llama whose BOS id is also its padding id: HF initialises that embedding row to 0."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from lmfacts.models.tiny import load_byte_tokenizer

    tok = load_byte_tokenizer()
    cfg = LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=len(tok), max_position_embeddings=128, bos_token_id=0,
                      eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    assert float(model.get_input_embeddings().weight[0].detach().abs().max()) == 0.0
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_zero_bos_embedding_skips_rn2_with_the_evidence(tmp_path: Path) -> None:
    model = _zero_bos_llama(tmp_path / "zero-bos-llama")
    proc, _ = run_pytest("claims/", "-k", "RN-2 and not RN-2p", "--model", str(model), "--max-prompts", "6",
                         report_dir=tmp_path / "r")
    assert proc.returncode in (0, 5), proc.stdout[-3000:]
    (rn2,) = [r for r in load_report(tmp_path / "r")["results"] if r["claim"] == "RN-2"]
    assert rn2["outcome"] == "skipped", rn2
    assert "BOS residual is exactly 0" in rn2["reason"] and rn2["measured"]["zero_bos_points"]


def test_bos_premise_reads_the_tokens_not_the_architecture(tmp_path: Path) -> None:
    proc, _ = run_pytest("claims/", "-k", "RN-2 and not RN-2p", "--model", "tiny-neox", "--model", "tiny-gpt2",
                         "--max-prompts", "6", report_dir=tmp_path)
    assert proc.returncode in (0, 1), proc.stdout[-3000:]
    by_model = {r["model"]: r for r in load_report(tmp_path)["results"] if r["claim"] == "RN-2"}
    neox = by_model["tiny-neox"]  # the bridge does not prepend BOS for GPT-NeoX, although the tokenizer has one
    assert neox["outcome"] == "skipped" and "without a BOS" in neox["reason"] and "BOS id 0" in neox["reason"]
    gpt2 = by_model["tiny-gpt2"]["premises"]
    assert [p["holds"] for p in gpt2 if p["name"] == "bos_prepended"] == [True]
