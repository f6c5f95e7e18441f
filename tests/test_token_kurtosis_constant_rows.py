"""Per-token kurtosis (RS-1) over tokens whose residual vector is constant across d_model.

Pearson kurtosis of a constant vector is 0/0. Models do have such rows: an all-zero embedding row (a pad
token's row left at zero by ``padding_idx``, which in a byte-level vocabulary is an ordinary character) or a
constant one. One such token used to make the point's mean NaN (RS-1 E ``median_kurtosis=nan`` with no cause);
now it is left out and counted, and the rotated statistic (a rotation makes a constant non-zero row
non-constant) counts only the rows that stay constant.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lmfacts.models.loading import build_tiny_model
from lmfacts.probe.accumulators import per_token_kurtosis
from lmfacts.probe.batching import tokenize_one
from lmfacts.probe.probe import run_probe

TEXTS = ["a!b!c one two", "!!! three", "plain words here", "x! y? z."]


def test_constant_rows_are_counted_not_averaged() -> None:
    lm = build_tiny_model("tiny-llama", seed=0)
    bridge, info = lm.bridge, lm.info
    emb = bridge.original_model.get_input_embeddings().weight
    bang = tokenize_one(bridge, "!", prepend_bos=False, n_ctx=info.n_ctx)[0][0]
    question = tokenize_one(bridge, "?", prepend_bos=False, n_ctx=info.n_ctx)[0][0]
    with torch.no_grad():
        emb[bang] = 0.0  # all-zero row: constant in both bases
        emb[question] = 0.25  # constant non-zero row: constant only in the model's basis
    probe = run_probe(bridge, TEXTS, prepend_bos=info.prepends_bos, padding_side=info.padding_side or "right",
                      pad_id=info.pad_token_id or 0, n_ctx=info.n_ctx)

    # the reference: the embedding point's content vectors, one prompt at a time
    start = 1 if info.prepends_bos else 0
    rows = []
    for t in TEXTS:
        ids, _ = tokenize_one(bridge, t, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
        with torch.no_grad():
            _, cache = bridge.run_with_cache(torch.tensor([ids]))
        rows.append(cache["blocks.0.hook_resid_pre"][0, start:])
    x = torch.cat(rows).double()
    n_bang = sum(t.count("!") for t in TEXTS)
    n_q = sum(t.count("?") for t in TEXTS)

    k = per_token_kurtosis(x)
    defined = torch.isfinite(k)
    assert int((~defined).sum()) == n_bang + n_q  # the reference itself is 0/0 on them
    assert probe.token_kurtosis_undefined(0) == n_bang + n_q
    assert math.isfinite(probe.token_kurtosis(0))
    assert np.isclose(probe.token_kurtosis(0), float(k[defined].mean()), rtol=1e-4)

    rot = torch.from_numpy(probe.rotation).double()
    kr = per_token_kurtosis(x @ rot)
    assert probe.token_kurtosis_undefined(0, rotated=True) == int((~torch.isfinite(kr)).sum()) == n_bang
    assert np.isclose(probe.token_kurtosis(0, rotated=True), float(kr[torch.isfinite(kr)].mean()), rtol=1e-4)
    # deeper points: attention mixes the rows, nothing is constant any more
    assert probe.token_kurtosis_undefined(1) == 0
