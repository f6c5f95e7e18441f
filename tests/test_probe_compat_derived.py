"""The compat view derived from the raw pass equals a real pass over compat-processed weights.

For each model, :func:`run_probe` runs once on the raw weights with ``derive`` set (centred per
token on LayerNorm models, identity on RMSNorm ones: :func:`derivation_for`), and once on a second
copy of the model with TransformerLens compat processing applied. Every statistic a compat claim
reads (norms per class and point for resid / resid_mid / attn_out / mlp_out, per-prompt content
means, the RN-4 bound, the BOS deviation, the MLP active share, the token sample and RN-9's
centring statistics) must agree to 1e-5 relative (norm-wise: max|a − b| ≤ 1e-5 · max|b|); the two
float-noise statistics (BOS deviation ~1e-7, mean/std of a centred stream ~1e-7) to 1e-5 absolute;
the MLP share to 5e-5 absolute (pre-activations within float noise of 0 flip sign, as in
test_probe_equality). The compat-model check the session relies on (:func:`fingerprint`) must
accept the derivation and reject the other one.

Planted failure: a derivation that does not hold (identity on a LayerNorm model) is caught.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmfacts.measures.rn import centring_stats
from lmfacts.models.loading import build_tiny_model, load_model
from lmfacts.probe.probe import derivation_for, fingerprint, fingerprint_error, run_probe
from tests.helpers import PROBE_TEXTS as TEXTS

RTOL = 1e-5
TINY = ["tiny-gpt2", "tiny-neox", "tiny-llama", "tiny-bert", "tiny-gemma", "tiny-gemma2"]


def _rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b)), "NaN pattern differs"
    if b.size == 0 or np.isnan(b).all():
        return 0.0
    return float(np.nanmax(np.abs(a - b))) / max(float(np.nanmax(np.abs(b))), 1e-30)


def compare(derived: Any, real: Any) -> dict[str, float]:
    """Relative (or, for the float-noise statistics, absolute) error of every statistic; see the module docstring."""
    err: dict[str, float] = {}
    for kind in ("resid", "resid_mid", "attn_out", "mlp_out"):
        a, b = getattr(derived, kind), getattr(real, kind)
        for cls in ("content", "bos", "pad", "bos_mid", "special"):
            err[f"{kind}.{cls}"] = _rel(a.mean(cls), b.mean(cls))
        err[f"{kind}.prompt_means"] = _rel(a.prompt_means(), b.prompt_means())
    err["bound_min_slack"] = _rel(derived.bound_min_slack, real.bound_min_slack)
    err["bound_violations"] = float(np.abs(derived.bound_violations - real.bound_violations).max())
    err["bos_max_rel_dev(abs)"] = float(np.abs(derived.bos_max_rel_dev - real.bos_max_rel_dev).max())
    for p, (a, b) in enumerate(zip(derived.bos_first, real.bos_first, strict=True)):
        if a is not None or b is not None:
            err[f"bos_first[{p}]"] = _rel(a, b)
    err["mlp_share(abs)"] = float(np.nanmax(np.abs(derived.mlp_active_share() - real.mlp_active_share())))
    for p, (a, b) in enumerate(zip(derived.points, real.points, strict=True)):
        assert a.n_tokens == b.n_tokens
        if b.sample is not None:
            err[f"sample[{p}]"] = _rel(a.sample.numpy(), b.sample.numpy())
    ca, cb = centring_stats(derived), centring_stats(real)
    err["centring.mean_over_std(abs)"] = float(np.nanmax(np.abs(np.subtract(ca.mean_over_std, cb.mean_over_std))))
    err["centring.identity_error(abs)"] = float(np.nanmax(np.abs(np.subtract(ca.identity_error, cb.identity_error))))
    assert derived.position_counts == real.position_counts
    assert derived.n_content_tokens == real.n_content_tokens
    return err


def _limits(err: dict[str, float]) -> list[str]:
    bad = []
    for key, value in err.items():
        limit = 5e-5 if key.startswith("mlp_share") else 0.0 if key == "bound_violations" else RTOL
        if not value <= limit:
            bad.append(f"{key}: {value:.3g} > {limit}")
    return bad


def _args(lm: Any) -> dict[str, Any]:
    info = lm.info
    return dict(prepend_bos=info.prepends_bos, padding_side=info.padding_side or "right",
                pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx)


def both_ways(raw: Any, compat: Any, texts: list[str]) -> tuple[Any, Any, str]:
    """(derived compat view, real compat pass, derivation) of ``texts``; ``compat`` gets compat processing."""
    derive = derivation_for(raw.bridge)
    derived = run_probe(raw.bridge, texts, batch_size=3, derive=derive, **_args(raw)).compat
    compat.apply_compat_processing()
    real = run_probe(compat.bridge, texts, batch_size=3, **_args(compat))
    return derived, real, derive


@pytest.mark.parametrize("name", TINY)
def test_compat_view_from_the_raw_pass_equals_a_compat_pass(name: str) -> None:
    raw, compat = build_tiny_model(name, seed=1), build_tiny_model(name, seed=1)
    derived, real, derive = both_ways(raw, compat, TEXTS)
    err = compare(derived, real)
    print(f"{name} ({derive}): max relative error {max(v for k, v in err.items() if '(abs)' not in k):.3g}")
    assert _limits(err) == []
    # the session's check on the compat model: the derivation fits, the other one does not
    info = raw.info
    fp_raw = fingerprint(raw.bridge, TEXTS[3], prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
    fp_compat = fingerprint(compat.bridge, TEXTS[3], prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)["raw"]
    other = "identity" if derive == "centred" else "centred"
    assert fingerprint_error(fp_raw[derive], fp_compat)[0] <= 1e-4
    assert fingerprint_error(fp_raw[other], fp_compat)[0] > 1e-2


def test_a_wrong_derivation_is_caught() -> None:
    """Planted: the identity derivation on a LayerNorm model differs from the compat pass."""
    raw, compat = build_tiny_model("tiny-gpt2", seed=1), build_tiny_model("tiny-gpt2", seed=1)
    wrong = run_probe(raw.bridge, TEXTS, batch_size=3, derive="identity", **_args(raw)).compat
    compat.apply_compat_processing()
    real = run_probe(compat.bridge, TEXTS, batch_size=3, **_args(compat))
    bad = _limits(compare(wrong, real))
    assert any(b.startswith("resid.content") for b in bad)


def test_smollm2_compat_view_equals_a_compat_pass() -> None:
    """The packaged smollm2-135m (RMSNorm: identity) on a 12-prompt stratified corpus subset."""
    from lmfacts.prompts.corpus import load_builtin_corpus

    texts = list(load_builtin_corpus().sample(12, seed=0).texts)
    derived, real, derive = both_ways(load_model("smollm2-135m"), load_model("smollm2-135m"), texts)
    assert derive == "identity"
    err = compare(derived, real)
    print(f"smollm2-135m ({derive}): max relative error {max(v for k, v in err.items() if '(abs)' not in k):.3g}")
    assert _limits(err) == []
