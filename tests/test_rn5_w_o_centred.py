"""RN-5's conventions say whether the W_O it measured was centred, measured on the weights (not assumed).

TransformerLens' compat processing centres the writing weights of LayerNorm models (GPT-2) but not of RMSNorm
models (Llama), and some adapters skip it (XGLM); RN-5's docstring used to say "centres W_O" for every model.
"""

from __future__ import annotations

import pytest

from lmfacts.models.loading import build_tiny_model
from lmfacts.weights import WeightViews


@pytest.mark.parametrize(("name", "centred"), [("tiny-gpt2", True), ("tiny-llama", False)])
def test_w_o_row_mean_says_whether_compat_centred_the_writing_weights(name: str, centred: bool) -> None:
    from claims.test_rn_norm_growth import W_O_CENTRED_REL, _w_o_row_mean_rel

    lm = build_tiny_model(name, seed=0)
    raw = _w_o_row_mean_rel(WeightViews(lm.bridge, "raw"))
    assert raw > W_O_CENTRED_REL  # a random W_O's rows do not average to 0 over d_model
    lm.apply_compat_processing()
    compat = _w_o_row_mean_rel(WeightViews(lm.bridge, "compat"))
    assert (compat <= W_O_CENTRED_REL) is centred, (raw, compat)
