"""The MLP rebuild (mlp_rebuild premise: RN-6, RN-7) on MLP conventions the first architectures did not have.

Inputs that exposed them (random models with trained-like norms; HF's initial gains of exactly 1 and biases of 0
hid both):

* a parallel block with one shared norm (Cohere: attention and MLP both read ``input_layernorm(x)``; GPT-J,
  Falcon, Phi-2 alike). The bridge has no ``ln2``, the rebuild applied no gain to the MLP input: raw
  ``mlp_pre_from_ln2`` missed by 0.32 and the premise skipped RN-6 / RN-7 on a model they apply to.
* a gate projection with a bias (StableLM in compat processing: fold_ln folds the LayerNorm bias into
  ``b_gate``; any checkpoint with ``mlp_bias``). The rebuild dropped ``b_gate``: compat ``mlp_pre_from_ln2``
  missed by 0.31.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lmfacts.models.loading import load_model
from lmfacts.rebuild import measure_rebuild
from tests.helpers import save_random_causal_lm

TEXTS = ["The quick brown fox jumps over the lazy dog near the river bank.", "Paris is the capital of France."]
SMALL = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=128, max_position_embeddings=128)


@pytest.mark.parametrize(("model_type", "config", "processing"), [
    ("cohere", {"use_qk_norm": False}, "raw"),           # parallel block, one LayerNorm (no bias) for both
    ("cohere", {"use_qk_norm": False}, "compat"),
    ("stablelm", {}, "compat"),                          # LayerNorm bias folded into the gate's bias
    ("stablelm", {}, "raw"),
    ("llama", {"mlp_bias": True}, "raw"),                # a gate bias in the checkpoint itself
])
def test_mlp_rebuild_reproduces_the_hooks(tmp_path: Path, model_type: str, config: dict, processing: str) -> None:
    d = save_random_causal_lm(tmp_path / model_type, model_type, trained_norms=True, **SMALL, **config)
    lm = load_model(str(d))
    if processing == "compat":
        lm.apply_compat_processing()
    report = measure_rebuild(lm.bridge, TEXTS, processing=processing, dtype="float32",
                             prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx, device="cpu")
    holds, evidence = report.holds("mlp_rebuild")
    assert holds, evidence
    assert report.max_error("mlp_pre_from_ln2") < 1e-5 and report.max_error("mlp_from_ln2") < 1e-5, evidence


def test_an_mlp_without_a_norm_before_it_is_named(tmp_path: Path) -> None:
    """OLMo 2 (norms after the sublayers only): the MLP reads resid_mid itself. The premise still does not hold
    (RN-6 / RN-7 feed normalised random inputs, which this MLP never reads), and its evidence now says why
    instead of a bare "mlp_pre_from_ln2 7.8"."""
    d = save_random_causal_lm(tmp_path / "olmo2", "olmo2", trained_norms=True, **SMALL)
    lm = load_model(str(d))
    report = measure_rebuild(lm.bridge, TEXTS, processing="raw", dtype="float32",
                             prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx, device="cpu")
    holds, evidence = report.holds("mlp_rebuild")
    assert not holds and report.max_error("mlp_pre_from_ln2") > 1.0
    assert "the MLP reads its input unnormalised" in evidence
    assert "mlp_pre_from_resid" not in report.errors  # a diagnostic, not one of the premise's checks
