"""RN-5/RN-6/RN-7 rebuild W_OV and the MLP on normalised inputs from compat weights: they need every block
norm folded (premise ``norms_folded``, measured on the compat model's norm modules).

Input that exposed it: a random Nemotron (LayerNorm1P, gain = weight + 1). TransformerLens 4.3's adapter
does not support fold_ln ("norm weights stay unfolded"), so RN-5's W_OV was W_V·W_O without ln1's gain
(‖W_OV‖ ≈ 0.047 per head where the model's is ≈ 0.093) and RN-6/RN-7 fed W_in inputs normalised without
ln2's gain, yet the claims were judged (RN-5 ✗). Planted answers: a norm with a known gain and bias, and
norms folded by compat processing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import save_random_causal_lm


def test_nemotron_norms_are_unfolded_after_compat(tmp_path: Path) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.premises import unfolded_norms

    d = save_random_causal_lm(tmp_path / "nemotron", "nemotron", num_hidden_layers=2, hidden_size=32,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, intermediate_size=64,
                              max_position_embeddings=64)
    lm = load_model(str(d))
    lm.apply_compat_processing()
    bad = dict(unfolded_norms(lm.bridge, 1e-3))
    assert set(bad) == {"blocks.0.ln1", "blocks.0.ln2", "blocks.1.ln1", "blocks.1.ln2"}, bad
    assert all(v > 0.5 for v in bad.values()), bad  # gain 2 (weight 1 + 1): output twice the normalised input


def test_folded_norms_hold() -> None:
    from lmfacts.models.loading import build_tiny_model
    from lmfacts.premises import unfolded_norms

    for name in ("tiny-llama", "tiny-gemma"):  # RMSNorm, and Gemma's (1 + weight) gain
        lm = build_tiny_model(name)
        lm.apply_compat_processing()
        assert unfolded_norms(lm.bridge, 1e-3) == [], name


@pytest.mark.parametrize("claim_id", ["RN-5", "RN-6", "RN-7"])
def test_weight_rebuild_claims_require_folded_norms(claim_id: str) -> None:
    from lmfacts.claims_cli import load_catalogue

    assert "norms_folded" in load_catalogue()[claim_id].requires
