"""The streaming probe equals the same statistics computed from cached activations.

For each model, :func:`run_probe` (batches of 4, so padding and batch merging are exercised) is
compared with ``bridge.run_with_cache`` run on each prompt alone (unbatched, no padding). Tolerances
are *norm-wise relative*: ``max|a − b| ≤ rtol · max|b|``. 1e-5 for first and second moments,
norms, covariance and extremes (batched vs unbatched float32 forwards differ by ~1e-6 relative:
different padding changes the matmul blocking); 1e-4 for kurtosis-type statistics, which raise
activations to the fourth power (4× the relative error) and divide by a squared variance.
Top-k dimension counts are compared as counts: a near-tie between the 8th and 9th largest |x| of a
token can flip under that float noise, so up to 1 % of the counted slots may move. Likewise the MLP
active share counts pre-activations > 0: entries within float noise of 0 flip sign between batched
and unbatched passes (smollm2-135m: 6e-6 of ~10⁶ entries), so it is compared to 5e-5 absolute.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

from lmfacts.models.loading import build_tiny_model, load_model
from lmfacts.probe.accumulators import per_token_kurtosis
from lmfacts.probe.batching import BOS, CONTENT, PAD, PromptError, make_batch, plan_batches, tokenize_one
from lmfacts.probe.probe import DEFAULT_BATCH_TOKENS, TOPK_DIMS, run_probe
from tests.helpers import PROBE_TEXTS as TEXTS

BATCH = 4
SHARE_ATOL = 5e-5  # see the module docstring: sign flips of pre-activations within float noise of 0


def _close(a: Any, b: Any, rtol: float, what: str) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    scale = float(np.nanmax(np.abs(b))) if b.size else 0.0
    err = float(np.nanmax(np.abs(a - b))) if b.size else 0.0
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaN pattern differs"
    assert err <= rtol * max(scale, 1e-30), f"{what}: max abs diff {err:.3e} > {rtol} × {scale:.3e}"


def _args(lm: Any) -> dict[str, Any]:
    info = lm.info
    return dict(prepend_bos=info.prepends_bos, padding_side=info.padding_side or "right",
                pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx)


def _reference(lm: Any, texts: list[str]) -> dict[str, Any]:
    """Every probe statistic recomputed from run_with_cache, one prompt at a time."""
    bridge, info = lm.bridge, lm.info
    L = bridge.cfg.n_layers
    names = set(bridge.hook_dict)
    has_mid = all(f"blocks.{i}.hook_resid_mid" in names for i in range(L))
    out: dict[str, Any] = {k: [] for k in ("resid", "attn", "mlp", "mid", "bos", "content_vecs", "pre")}
    for text in texts:
        ids, _ = tokenize_one(bridge, text, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
        with torch.no_grad():
            _, cache = bridge.run_with_cache(torch.tensor([ids]))
        start = 1 if info.prepends_bos else 0
        pts = [cache[f"blocks.{i}.hook_resid_pre"][0] for i in range(L)] + [cache[f"blocks.{L - 1}.hook_resid_post"][0]]
        out["resid"].append(torch.stack([p.norm(dim=-1) for p in pts]).double().numpy())  # [L+1, p]
        out["attn"].append(torch.stack([cache[f"blocks.{i}.hook_attn_out"][0].norm(dim=-1) for i in range(L)]).numpy())
        out["mlp"].append(torch.stack([cache[f"blocks.{i}.hook_mlp_out"][0].norm(dim=-1) for i in range(L)]).numpy())
        if has_mid:
            out["mid"].append(torch.stack([cache[f"blocks.{i}.hook_resid_mid"][0].norm(dim=-1)
                                           for i in range(L)]).numpy())
        out["content_vecs"].append([p[start:].double() for p in pts])
        out["pre"].append([cache[f"blocks.{i}.mlp.hook_pre"][0][start:].double() for i in range(L)])
        out["bos"].append([p[0].double().numpy() for p in pts] if info.prepends_bos else None)
    out["start"], out["has_mid"], out["L"] = (1 if info.prepends_bos else 0), has_mid, L
    return out


def _check_equal(lm: Any, texts: list[str]) -> None:
    probe = run_probe(lm.bridge, texts, batch_size=BATCH, **_args(lm))
    ref = _reference(lm, texts)
    L, s = ref["L"], ref["start"]

    # norms per point and class (content, BOS) and per-prompt content means
    for name, key, _n in (("resid", "resid", L + 1), ("attn_out", "attn", L), ("mlp_out", "mlp", L)) + (
            (("resid_mid", "mid", L),) if ref["has_mid"] else ()):
        sums = getattr(probe, name)
        allc = np.concatenate([r[:, s:] for r in ref[key]], axis=1)
        _close(sums.mean("content"), allc.mean(1), 1e-5, f"{name} content mean")
        _close(sums.prompt_means(), np.stack([r[:, s:].mean(1) for r in ref[key]]), 1e-5, f"{name} prompt means")
        if s:
            _close(sums.mean("bos"), np.stack([r[:, 0] for r in ref[key]]).mean(0), 1e-5, f"{name} BOS mean")
        assert sums.counts["content"][0] == allc.shape[1]
    assert probe.has_resid_mid == ref["has_mid"]

    # per-dimension moments (aligned and rotated), per-token kurtosis, covariance, extremes, top-k
    rot = torch.from_numpy(probe.rotation)
    for p in range(L + 1):
        x = torch.cat([v[p] for v in ref["content_vecs"]])
        st = probe.points[p]
        assert st.n_tokens == x.shape[0]
        for moments, y in ((st.moments, x), (st.rotated_moments, x @ rot)):
            m = y.mean(0)
            var = y.var(0, unbiased=False)
            kurt = ((y - m) ** 4).mean(0) / var**2
            _close(moments.mean(), m.numpy(), 1e-5, f"point {p} mean")
            _close(moments.variance(), var.numpy(), 1e-5, f"point {p} variance")
            _close(moments.kurtosis(), kurt.numpy(), 1e-4, f"point {p} kurtosis")
        _close(probe.token_kurtosis(p), float(per_token_kurtosis(x).mean()), 1e-4, f"point {p} token kurtosis")
        _close(probe.token_kurtosis(p, rotated=True), float(per_token_kurtosis(x @ rot).mean()), 1e-4,
               f"point {p} rotated token kurtosis")
        m = x.mean(0)
        _close(probe.covariance(p), (x.T @ x / x.shape[0] - torch.outer(m, m)).numpy(), 1e-5, f"point {p} cov")
        _close(st.max_signed, x.max(0).values.numpy(), 1e-5, f"point {p} max")
        _close(st.min_signed, x.min(0).values.numpy(), 1e-5, f"point {p} min")
        _close(st.abs_sum, x.abs().sum(0).numpy(), 1e-5, f"point {p} abs sum")
        top = torch.topk(x.abs(), min(TOPK_DIMS, x.shape[1]), dim=-1).indices.reshape(-1)
        counts = torch.bincount(top, minlength=x.shape[1]).double().numpy()
        assert np.abs(st.topk_counts - counts).sum() <= 0.01 * counts.sum() * 2, f"point {p} top-k counts"
        assert st.topk_counts.sum() == counts.sum()

    # MLP active share; RN-4 bound; BOS identical across prompts (causal models)
    pre = [torch.cat([v[i] for v in ref["pre"]]) for i in range(L)]
    share = np.array([float((q > 0).double().mean()) for q in pre])
    assert np.max(np.abs(probe.mlp_active_share() - share)) <= SHARE_ATOL, "mlp active share"
    if s and not lm.info.is_encoder:
        bos = np.stack([np.stack(b) for b in ref["bos"]])  # [n, L+1, d]
        dev = np.linalg.norm(bos - bos[0], axis=-1) / np.linalg.norm(bos[0], axis=-1)
        _close(probe.bos_max_rel_dev, dev.max(0), 1.0, "BOS deviation")  # both float noise
        assert probe.bos_max_rel_dev.max() < 1e-4
    if not lm.info.is_encoder:
        assert probe.bound_violations.sum() == 0


def _check_pad(lm: Any, texts: list[str]) -> None:
    """Padding positions' mean norm equals the batched run_with_cache's (pad is batch-dependent)."""
    probe = run_probe(lm.bridge, texts, batch_size=BATCH, **_args(lm))
    a = _args(lm)
    total, count = np.zeros(lm.bridge.cfg.n_layers + 1), 0.0
    lengths = [len(tokenize_one(lm.bridge, t, prepend_bos=a["prepend_bos"], n_ctx=a["n_ctx"])[0]) for t in texts]
    for index in plan_batches(lengths, batch_tokens=DEFAULT_BATCH_TOKENS, max_prompts=BATCH):  # the probe's batches
        batch = make_batch(lm.bridge, [texts[i] for i in index], prepend_bos=a["prepend_bos"], n_ctx=a["n_ctx"],
                           padding_side=a["padding_side"], pad_id=a["pad_id"], device="cpu")
        with torch.no_grad():
            _, cache = lm.bridge.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
        L = lm.bridge.cfg.n_layers
        pts = [cache[f"blocks.{j}.hook_resid_pre"] for j in range(L)] + [cache[f"blocks.{L - 1}.hook_resid_post"]]
        pad = batch.classes == PAD
        total += np.array([float(p.norm(dim=-1)[pad].double().sum()) for p in pts])
        count += float(pad.sum())
    assert count > 0
    _close(probe.resid.mean("pad"), total / count, 1e-5, "pad mean")


TINY = ["tiny-gpt2", "tiny-neox", "tiny-llama", "tiny-bert"]


@pytest.fixture(scope="module", params=TINY)
def tiny(request: pytest.FixtureRequest) -> Any:
    return build_tiny_model(request.param, seed=1)


def test_probe_equals_cache_tiny(tiny: Any) -> None:
    _check_equal(tiny, TEXTS)


def test_probe_pad_equals_batched_cache(tiny: Any) -> None:
    _check_pad(tiny, TEXTS)


def test_neox_has_no_resid_mid() -> None:
    lm = build_tiny_model("tiny-neox", seed=1)
    assert not run_probe(lm.bridge, TEXTS[:2], **_args(lm)).has_resid_mid


def test_batch_size_does_not_matter(tiny: Any) -> None:
    results = [run_probe(tiny.bridge, TEXTS, batch_size=b, **_args(tiny)) for b in (1, 3, 8)]
    for r in results[1:]:
        _close(r.resid.mean("content"), results[0].resid.mean("content"), 1e-5, "content mean vs batch size")
        _close(r.resid.prompt_means(), results[0].resid.prompt_means(), 1e-5, "prompt means vs batch size")
        _close(r.points[-1].moments.variance(), results[0].points[-1].moments.variance(), 1e-5, "variance")
        _close(r.mlp_active_share(), results[0].mlp_active_share(), 1e-5, "mlp share")


def test_empty_prompt_is_a_clear_error(tiny: Any) -> None:
    for bad in ("", "   \n"):
        with pytest.raises(PromptError, match="empty prompt"):
            run_probe(tiny.bridge, ["fine", bad], **_args(tiny))


def test_long_prompt_is_truncated_with_a_warning(tiny: Any) -> None:
    long = "abcdefghij " * 60  # 660 byte tokens > n_ctx 256 of the tiny models
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = run_probe(tiny.bridge, ["short", long], **_args(tiny))
    assert r.truncated_prompts == [long]
    assert any("truncated" in str(w.message) for w in caught)
    assert r.resid.counts["content"][0] + r.resid.counts["bos"][0] == len(tokenize_one(
        tiny.bridge, "short", prepend_bos=tiny.info.prepends_bos, n_ctx=tiny.info.n_ctx)[0]) + tiny.info.n_ctx


@pytest.mark.needs_model
def test_probe_equals_cache_smollm2() -> None:
    lm = load_model("smollm2-135m")
    _check_equal(lm, TEXTS)
    _check_pad(lm, TEXTS)


# The class constants are used by the reference code above; keep the import check explicit.
assert (PAD, BOS, CONTENT) == (0, 1, 2)
