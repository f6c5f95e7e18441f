"""The rebuild self-check names a scalar multiplier between a sublayer and the stream (Granite's residual_multiplier).

Input that exposed it: a random Granite (``residual_multiplier`` = 0.22). TransformerLens' bridge exposes
0.22·o_proj at ``hook_attn_out`` (what the block adds), so ``additive_residual`` rightly does not hold, but
its evidence read "attn_out_is_o_proj 3.55 (block 0)", which does not say why. Planted answers: the
multiplier in the config, and synthetic sums with a known per-block scalar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lmfacts.models.loading import load_model
from lmfacts.rebuild import measure_rebuild, scalar_multiplier_note
from tests.helpers import save_random_causal_lm

TEXTS = ["The quick brown fox jumps over the lazy dog near the river bank.", "Paris is the capital of France."]
GRANITE = dict(num_hidden_layers=3, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=128, max_position_embeddings=128, embedding_multiplier=12.0,
               attention_multiplier=0.0625, logits_scaling=1.0)


def _rebuild(tmp_path: Path, residual_multiplier: float) -> object:
    d = save_random_causal_lm(tmp_path / f"granite-{residual_multiplier}", "granite",
                              residual_multiplier=residual_multiplier, **GRANITE)
    lm = load_model(str(d))
    return measure_rebuild(lm.bridge, TEXTS, processing="raw", dtype="float32", prepend_bos=lm.info.prepends_bos,
                           n_ctx=lm.info.n_ctx, device="cpu")


def test_granite_residual_multiplier_is_named(tmp_path: Path) -> None:
    report = _rebuild(tmp_path, 0.22)
    holds, evidence = report.holds("additive_residual")
    assert not holds
    assert report.max_error("attn_out_is_o_proj") == pytest.approx(1 / 0.22 - 1, rel=1e-4)  # ‖o − 0.22·o‖/‖0.22·o‖
    assert "hook_attn_out = 0.22 × the output projection" in evidence
    assert "hook_mlp_out = 0.22 × the down projection" in evidence
    assert report.holds("residual_sum")[0]  # the stream is still the plain sum of what the hooks expose


def test_without_a_multiplier_nothing_is_noted(tmp_path: Path) -> None:
    report = _rebuild(tmp_path, 1.0)
    holds, evidence = report.holds("additive_residual")
    assert holds and "multiplier" not in evidence, evidence


def _sums(c: np.ndarray, noise: float, seed: int = 0) -> tuple[list[float], np.ndarray, np.ndarray, np.ndarray]:
    """Per-block sums for hooked = c_b·reference + noise over 200 random 16-d rows."""
    rng = np.random.default_rng(seed)
    errors, dot, ref_sq, hooked_sq = [], [], [], []
    for cb in c:
        a = rng.standard_normal((200, 16))
        b = cb * a + noise * rng.standard_normal(a.shape)
        errors.append(float(np.linalg.norm(a - b) / np.linalg.norm(b)))
        dot.append(float((a * b).sum()))
        ref_sq.append(float((a * a).sum()))
        hooked_sq.append(float((b * b).sum()))
    return errors, np.array(dot), np.array(ref_sq), np.array(hooked_sq)


def test_note_on_planted_scalars() -> None:
    note = scalar_multiplier_note("attn_out_is_o_proj", *_sums(np.full(4, 0.5), 0.0), 1e-3)
    assert "= 0.5 ×" in note
    note = scalar_multiplier_note("mlp_out_is_down_proj", *_sums(np.array([0.5, 1.5, 2.0]), 0.0), 1e-3)
    assert "from 0.5 to 2" in note and note.startswith("hook_mlp_out")
    # not a scalar (noise well above the tolerance): no note; a check that holds: no note
    assert scalar_multiplier_note("attn_out_is_o_proj", *_sums(np.full(4, 0.5), 0.1), 1e-3) == ""
    assert scalar_multiplier_note("attn_out_is_o_proj", *_sums(np.ones(4), 0.0), 1e-3) == ""
    # a block that could not be measured: no note (nothing is claimed about it)
    errors, dot, ref_sq, hooked_sq = _sums(np.full(3, 0.5), 0.0)
    assert scalar_multiplier_note("attn_out_is_o_proj", [None, *errors[1:]], dot, ref_sq, hooked_sq, 1e-3) == ""
