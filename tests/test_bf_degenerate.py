"""BF-3 / BF-7 on matrices a statistic cannot judge: excluded with their reason and counted, the rest judged.

A tiny random Llama planted with two kinds of degenerate matrix beside ordinary ones: one 8-dim KV head
(W_K and W_V are 32×8, so 8 singular values, too few for BF-7's bulk-rank fit) and block 1's W_O with
three of its four heads zeroed (rank 8 of 32: zeros inside BF-7's bulk ranks; 75% of the entries are
exactly 0, so BF-3's interquartile range is 0). Before the exclusion, either raised a ValueError inside
the claim (outcome error).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from claims.test_bf_distributions import spectrum_rows, sv_rank_floor, weight_gaussianity, weight_spectra
from lmfacts.models.loading import build_tiny_model
from tests.helpers import load_report, run_pytest

SMALL = {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 1, "intermediate_size": 88}
N_LAYERS = 4
TOO_SMALL = {f"{n}@{i}" for n in ("W_K", "W_V") for i in range(N_LAYERS)}  # 32×8: 8 singular values
PRUNED = "W_O@1"


def _prune_block1_heads(model: Any) -> None:
    import torch

    with torch.no_grad():
        model.model.layers[1].self_attn.o_proj.weight[:, 8:] = 0.0  # heads 1, 2, 3 of 4 (d_head 8)


@pytest.fixture(scope="module")
def planted() -> Any:
    return build_tiny_model("tiny-llama", seed=0, config_overrides=SMALL, hf_model_transform=_prune_block1_heads)


def test_bf7_excludes_too_small_and_rank_deficient_spectra_and_judges_the_rest(planted: Any) -> None:
    spectra = weight_spectra(planted.bridge, "cpu")
    res = spectrum_rows(spectra, "cpu", r2_min=0.95, mp_tol=0.1)
    assert set(res["excluded"]) == TOO_SMALL | {PRUNED}
    assert "numerical rank 8" in res["excluded"][PRUNED] and "zeros inside rank_range" in res["excluded"][PRUNED]
    assert all("needs at least 10" in res["excluded"][k] for k in TOO_SMALL)
    judged = {f"{r['weight']}@{r['layer']}" for r in res["matrices"]}
    assert len(judged) == len(spectra) - len(res["excluded"]) == 7 * N_LAYERS - 9
    assert "W_O@0" in judged and not judged & set(res["excluded"])
    assert 0.0 <= res["share"] <= 1.0 and np.isfinite(res["median_mp_log_distance"])


def test_bf7_rank_floor_sees_exact_zeros_not_random_small_values(planted: Any) -> None:
    """The pruned W_O's 24 zero singular values come out of the float64 Gram as rounding noise far
    below the floor; an unpruned random matrix's smallest singular value is far above it."""
    spectra = {f"{n}@{i}": (shape, sv) for n, i, shape, sv in weight_spectra(planted.bridge, "cpu")}
    shape, sv = spectra[PRUNED]
    floor = sv_rank_floor(sv.max(), shape, "cpu")
    assert int((sv > floor).sum()) == 8 and np.sort(sv)[::-1][8] < floor / 100
    shape0, sv0 = spectra["W_O@0"]
    assert sv0.min() > 100 * sv_rank_floor(sv0.max(), shape0, "cpu")


def test_bf3_excludes_the_zero_headed_matrix_and_counts_kv_entries_once(planted: Any) -> None:
    res = weight_gaussianity(planted.bridge, kurt_tol=1.0, bulk_tol=0.03, factor=1.5)
    assert set(res["excluded"]) == {PRUNED}
    assert "interquartile range is 0" in res["excluded"][PRUNED] and "75%" in res["excluded"][PRUNED]
    assert len(res["matrices"]) == 7 * N_LAYERS - 1
    kv = [r for r in res["matrices"] if r["weight"] in ("W_K", "W_V")]
    assert kv and all(r["n"] == 32 * 8 for r in kv)  # as stored: the one KV head is not repeated 4×
    # random Gaussian init: every judged matrix is Gaussian without outliers, the 256-entry ones too
    # (judged at the KS sampling bound of their size, not at a bulk_tol they cannot resolve)
    assert all(r["gaussian_no_outliers"] for r in res["matrices"]), [r for r in res["matrices"]
                                                                     if not r["gaussian_no_outliers"]]
    assert res["share"] == 1.0


def test_claims_report_the_exclusions_instead_of_an_error(tmp_path: Path) -> None:
    """End to end: BF-3 and BF-7 on the planted model saved as a local HF directory."""
    from lmfacts.models.tiny import build_tiny_hf_model, byte_tokenizer_dir

    model_dir = tmp_path / "planted-degenerate"
    shutil.copytree(byte_tokenizer_dir(), model_dir)
    model, _, _ = build_tiny_hf_model("tiny-llama", seed=0, config_overrides=SMALL)
    _prune_block1_heads(model)
    model.save_pretrained(str(model_dir))
    proc, _ = run_pytest("claims/test_bf_distributions.py", "-k", "BF-3 or BF-7", "--model", str(model_dir),
                         "--max-prompts", "4", "-q", report_dir=tmp_path / "reports")
    results = {r["claim"]: r for r in load_report(tmp_path / "reports")["results"]}
    assert set(results) == {"BF-3", "BF-7"}, proc.stdout[-3000:]
    for cid, excluded in (("BF-3", {PRUNED}), ("BF-7", TOO_SMALL | {PRUNED})):
        r = results[cid]
        assert r["outcome"] in ("passed", "failed"), (cid, r["outcome"], r["reason"])
        assert set(r["measured"]["excluded"]) == excluded and r["measured"]["n_excluded"] == len(excluded)
        assert r["measured"]["n_judged"] == 7 * N_LAYERS - len(excluded)
        assert "exclusion" in r["conventions"]
    assert results["BF-3"]["outcome"] == "passed"  # Gaussian init, judged on the 27 matrices left
