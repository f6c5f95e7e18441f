"""RN claims under the outcome contract: premises as data, self-checked rebuilds, dtype-scaled tolerances.

Each test here failed on the code before issue 10:

* Gemma stores RMSNorm gains as offsets (applied as 1 + w). RN-6/RN-7 multiplied random inputs by
  the raw w, so the random-input MLP output was ~0 (RN-6 "rate nan") and the random share 0.00×.
  :func:`test_gemma_random_inputs_use_the_modules_own_norm_and_mlp` compares RN-6/RN-7's weight
  statistics with Hugging Face's own norm and MLP modules applied to the same inputs.
* Gemma 2 normalises each sublayer's output before the residual add: RN-5/RN-6 compared weights
  with an attn_out / mlp_out whose size is a norm's gain. They must be skipped naming the premise
  ``additive_residual`` and its measured evidence; the stream is still a sum, so RN-4 runs.
* In bfloat16, RN-9 failed with "center_writing_weights did not centre the stream" (|mean|/std
  0.00265 > 1e-4): rounding reported as a finding. Its tolerances now follow the dtype.
* A claim body's exception or NaN is an ``error``, never a ✗; no RN claim may error on the tiny
  models.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from lmfacts.context import NonFiniteMeasurement
from lmfacts.measures import rn
from lmfacts.premises import PREMISES
from lmfacts.rebuild import RebuildReport, random_normalised_inputs
from lmfacts.tolerances import float_tol
from tests.helpers import load_report, run_pytest

# --------------------------------------------------------------------------------------------
# Registration: the premises each RN claim declares
# --------------------------------------------------------------------------------------------
EXPECTED_REQUIRES = {
    "RN-1": {"causal_decoder", "residual_sum"},
    "RN-1p": {"causal_decoder", "residual_sum"},
    "RN-2": {"causal_decoder", "bos_prepended", "residual_sum"},
    "RN-2p": {"causal_decoder", "bos_prepended"},
    "RN-3": {"causal_decoder", "additive_residual"},
    "RN-4": {"causal_decoder", "residual_sum"},
    "RN-4p": {"causal_decoder", "residual_sum"},
    "RN-5": {"causal_decoder", "additive_residual", "ov_rebuild", "norms_folded"},
    "RN-6": {"causal_decoder", "additive_residual", "mlp_rebuild", "norms_folded"},
    "RN-7": {"causal_decoder", "mlp_rebuild", "norms_folded"},
    "RN-8": {"ov_rebuild"},
    "RN-9": {"centred_stream"},
}


def test_rn_claims_declare_their_premises() -> None:
    import claims.test_rn_norm_growth as module
    from lmfacts.claims import CLAIMS

    assert module is not None
    declared = {cid: set(spec.requires) for cid, spec in CLAIMS.items() if spec.family == "RN"}
    assert declared == EXPECTED_REQUIRES
    source = Path(module.__file__).read_text()
    for hand_check in ("_decoder_only", "is_encoder", "prepends_bos", 'normalization == "RMS"'):
        assert hand_check not in source  # applicability is declared as premises, not checked by hand


# --------------------------------------------------------------------------------------------
# The RN premises, on fake models
# --------------------------------------------------------------------------------------------
def _ctx(**kw: Any) -> Any:
    return SimpleNamespace(target="t", dtype=kw.pop("dtype", "float32"), **kw)


def test_residual_sum_premise_reads_only_the_residual_add_check() -> None:
    def report(residual_add: list[float | None], attn: float) -> RebuildReport:
        return RebuildReport(errors={"residual_add": residual_add, "attn_out_is_o_proj": [attn, attn]}, tol=1e-3,
                             n_tokens=40, dtype="float32", processing="compat")

    post_norm = report([0.0, 0.0], attn=0.98)  # Gemma 2: a norm after each sublayer, the stream still a sum
    ctx = _ctx(session=SimpleNamespace(rebuild=lambda target, processing: post_norm))
    res = PREMISES["residual_sum"].check(ctx, "compat")
    assert res.holds and res.values["max_error"]["residual_add"] == 0.0 and res.values["tol"] == 1e-3

    renormalised = report([1e-5, 0.4], attn=0.0)  # post-LN: the stream is re-normalised at block 1
    ctx = _ctx(session=SimpleNamespace(rebuild=lambda target, processing: renormalised))
    res = PREMISES["residual_sum"].check(ctx, "compat")
    assert not res.holds and "0.4 (block 1)" in res.evidence and "tolerance 0.001" in res.evidence

    missing = report([None, None], attn=0.0)  # a residual hook the model does not have
    ctx = _ctx(session=SimpleNamespace(rebuild=lambda target, processing: missing))
    res = PREMISES["residual_sum"].check(ctx, "compat")
    assert not res.holds and "not measurable" in res.evidence

    non_finite = report([0.0, float("nan")], attn=0.0)  # NaN activations: an error, never a skip
    ctx = _ctx(session=SimpleNamespace(rebuild=lambda target, processing: non_finite))
    with pytest.raises(NonFiniteMeasurement):
        PREMISES["residual_sum"].check(ctx, "compat")


def _fake_probe(samples: list[torch.Tensor | None]) -> Any:
    d = next(s.shape[1] for s in samples if s is not None)
    return SimpleNamespace(d_model=d, points=[SimpleNamespace(sample=s) for s in samples])


def test_centring_stats_and_the_identity_bound() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, generator=g)
    centred = x - x.mean(-1, keepdim=True)
    shifted = centred + 0.3 * centred.std(-1, unbiased=False, keepdim=True)  # mean/std = 0.3 on every token
    stats = rn.centring_stats(_fake_probe([centred, shifted, None]))
    assert stats.n_tokens == [64, 64, 0]
    assert stats.mean_over_std[0] < 1e-6 and stats.identity_error[0] < 1e-12
    assert stats.mean_over_std[1] == pytest.approx(0.3, rel=1e-6)
    # ‖x‖²/d = std² + mean²: the identity's error is sqrt(1 + r²) − 1 for r = mean/std
    assert stats.identity_error[1] == pytest.approx(math.sqrt(1 + 0.09) - 1, rel=1e-6)
    assert math.isnan(stats.mean_over_std[2])
    assert stats.max_mean_over_std == pytest.approx(0.3, rel=1e-6)  # points without a sample are left out


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_centred_stream_premise_is_measured_and_follows_the_dtype(dtype: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(100, 64, generator=g)
    x = x - x.mean(-1, keepdim=True)
    rounding = x + 0.0025 * x.std(-1, unbiased=False, keepdim=True)  # what bf16 rounding left in tiny-gpt2
    uncentred = x + 0.25 * x.std(-1, unbiased=False, keepdim=True)  # an RMSNorm model's stream
    for sample, holds in ((rounding, dtype == "bfloat16"), (uncentred, False)):
        ctx = _ctx(dtype=dtype, probe=lambda processing, s=sample: _fake_probe([s, s]),
                   info=SimpleNamespace(normalization="RMS"))
        res = PREMISES["centred_stream"].check(ctx, "compat")
        assert res.holds is holds, res.evidence
        assert res.values["tol"] == float_tol(1e-4, dtype) and res.values["n_tokens"] == 200
        assert f"tolerance {float_tol(1e-4, dtype):.3g}, {dtype}" in res.evidence
    ctx = _ctx(probe=lambda processing: _fake_probe([torch.zeros(0, 8)]), info=SimpleNamespace(normalization="LN"))
    with pytest.raises(ValueError, match="no content token"):  # no data is an error, not a skip
        PREMISES["centred_stream"].check(ctx, "compat")


# --------------------------------------------------------------------------------------------
# Gemma: RN-6/RN-7's random-input statistics use the effective gain 1 + w
# --------------------------------------------------------------------------------------------
def _random_norm_gains(model: Any) -> None:
    """Move every norm gain away from its init (Gemma's offsets start at 0, i.e. gain 1)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))


def test_gemma_random_inputs_use_the_modules_own_norm_and_mlp() -> None:
    from lmfacts.models.loading import build_tiny_model
    from lmfacts.rebuild import measure_rebuild
    from lmfacts.weights import WeightViews

    lm = build_tiny_model("tiny-gemma", seed=0, hf_model_transform=_random_norm_gains)
    assert lm.info.normalization == "RMS" and lm.bridge.cfg.rmsnorm_uses_offset
    raw = rn.layer_weight_stats(WeightViews(lm.bridge, "raw"), lm.info.normalization)
    x = random_normalised_inputs(256, lm.bridge.cfg.d_model, "RMS", 0)  # the inputs layer_weight_stats uses
    for i, layer in enumerate(lm.bridge.original_model.model.layers):
        layer = getattr(layer, "_original_component", layer)  # the HF decoder layer the bridge wraps
        with torch.no_grad():
            h = layer.post_attention_layernorm(x)  # Gemma's pre-MLP RMSNorm: x / rms · (1 + w)
            want_norm = float(layer.mlp(h).norm(dim=-1).mean())
            want_share = float((layer.mlp.gate_proj(h) > 0).double().mean())
        assert raw["mlp_random_norm"][i] == pytest.approx(want_norm, rel=1e-4)
        assert raw["random_active_share"][i] == pytest.approx(want_share, abs=1e-9)
    rate, _ = rn.fitted_rate(raw["mlp_random_norm"], (0, 3))
    assert math.isfinite(rate)
    # compat processing folds the gains into W_in / W_gate: same function, and the rebuild self-check agrees
    texts = ["The cat sat on the mat.", "Residual streams grow over the forward pass."]
    lm.apply_compat_processing()
    compat = rn.layer_weight_stats(WeightViews(lm.bridge, "compat"), lm.info.normalization)
    np.testing.assert_allclose(compat["mlp_random_norm"], raw["mlp_random_norm"], rtol=1e-3)
    report = measure_rebuild(lm.bridge, texts, processing="compat", dtype="float32", prepend_bos=True,
                             n_ctx=lm.info.n_ctx, device="cpu")
    assert report.holds("mlp_rebuild")[0], report.holds("mlp_rebuild")[1]


# --------------------------------------------------------------------------------------------
# End to end: outcomes on tiny models in bfloat16
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    """RN-2 … RN-9 (no per-prompt variants) on four tiny models in bfloat16, 4 prompts."""
    out = tmp_path_factory.mktemp("rn-bf16")
    proc, _ = run_pytest("claims/test_rn_norm_growth.py", "--model", "tiny-gpt2", "--model", "tiny-gemma",
                         "--model", "tiny-gemma2", "--model", "tiny-bert", "--dtype", "bfloat16",
                         "--max-prompts", "4", "-q", "-k", "not RN-1 and not RN-1p and not RN-2p and not RN-4p",
                         report_dir=out, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    return {(r["claim"], r["model"]): r for r in load_report(out)["results"]}


def test_no_rn_claim_errors(bf16_run: dict[tuple[str, str], dict[str, Any]]) -> None:
    errors = {k: r["reason"] for k, r in bf16_run.items() if r["outcome"] == "error"}
    assert not errors
    assert {c for c, _ in bf16_run} == {"RN-2", "RN-3", "RN-4", "RN-5", "RN-6", "RN-7", "RN-8", "RN-9"}


def test_bf16_rn9_passes_on_a_centred_layernorm_stream(bf16_run: dict[tuple[str, str], dict[str, Any]]) -> None:
    r = bf16_run[("RN-9", "tiny-gpt2")]
    assert r["outcome"] == "passed", r["reason"]
    assert r["premises"][0]["name"] == "centred_stream" and r["premises"][0]["holds"]
    assert r["tolerance"]["tol"] == float_tol(1e-4, "bfloat16") and r["tolerance"]["tol_float32"] == 1e-4
    assert 1e-4 < r["measured"]["max_mean_over_std"] < r["tolerance"]["tol"]  # rounding, not a finding
    skipped = bf16_run[("RN-9", "tiny-gemma2")]  # RMSNorm: compat processing cannot centre the stream
    assert skipped["outcome"] == "skipped" and "premise centred_stream" in skipped["reason"]
    assert "max |mean|/std" in skipped["reason"] and skipped["premises"][0]["values"]["max_mean_over_std"] > 0.01


def test_post_sublayer_norms_skip_the_sublayer_claims(bf16_run: dict[tuple[str, str], dict[str, Any]]) -> None:
    for claim in ("RN-3", "RN-5", "RN-6"):
        r = bf16_run[(claim, "tiny-gemma2")]
        assert r["outcome"] == "skipped" and "premise additive_residual" in r["reason"], r["reason"]
        by_name = {p["name"]: p for p in r["premises"]}
        assert by_name["causal_decoder"]["holds"] and not by_name["additive_residual"]["holds"]
        errs = by_name["additive_residual"]["values"]["max_error"]
        assert errs["attn_out_is_o_proj"] > 0.5 and errs["residual_add"] <= 0.01  # measured evidence
        assert "attn_out_is_o_proj" in r["reason"] and "(block " in r["reason"]
    # the stream is still the sum of its hooked parts, and hook_pre is still the MLP's input projection
    assert bf16_run[("RN-4", "tiny-gemma2")]["outcome"] == "passed"
    assert bf16_run[("RN-7", "tiny-gemma2")]["outcome"] in ("passed", "failed")
    assert bf16_run[("RN-2", "tiny-gemma2")]["outcome"] in ("passed", "failed")


def test_gemma_rebuild_claims_measure_valid_numbers(bf16_run: dict[tuple[str, str], dict[str, Any]]) -> None:
    rn6, rn7 = bf16_run[("RN-6", "tiny-gemma")], bf16_run[("RN-7", "tiny-gemma")]
    for r in (rn6, rn7):
        assert r["outcome"] in ("passed", "failed"), r["reason"]
        rebuild = r["measured"]["rebuild_error"]
        assert rebuild["dtype"] == "bfloat16" and rebuild["tol"] == float_tol(1e-3, "bfloat16", 4)
        for check in ("mlp_pre_from_ln2", "mlp_from_ln2"):
            assert rebuild["max_error"][check] is not None and rebuild["max_error"][check] <= rebuild["tol"]
    assert rn6["measured"]["random_rate"] is not None and 0.5 < rn6["measured"]["random_rate"] < 2  # was NaN
    assert 0.5 < rn7["measured"]["random_to_real"] < 2  # was 0.00×
    assert rn6["measured"]["position_counts"]["content"] > 0


def test_encoder_skips_with_the_causal_premise(bf16_run: dict[tuple[str, str], dict[str, Any]]) -> None:
    for claim in ("RN-2", "RN-4", "RN-5", "RN-6", "RN-7"):
        r = bf16_run[(claim, "tiny-bert")]
        assert r["outcome"] == "skipped" and "premise causal_decoder" in r["reason"], (claim, r["reason"])
    assert bf16_run[("RN-8", "tiny-bert")]["outcome"] in ("passed", "failed")  # a theorem: any model


def test_bos_claims_count_positions_and_judge_a_late_peak(bf16_run: dict[tuple[str, str], dict[str, Any]]) -> None:
    r = bf16_run[("RN-2", "tiny-gpt2")]
    assert r["outcome"] in ("passed", "failed")  # a ratio peaking at the last point (decline NaN) is a finding
    counts = r["measured"]["position_counts"]
    assert counts["bos"] == 4 and counts["content"] > 0 and r["tolerance"]["bos_dev_tol"] == float_tol(1e-4, "bfloat16")


def test_a_nan_stream_is_an_error_not_a_failed_premise() -> None:
    from lmfacts.context import NonFiniteMeasurement

    x = torch.randn(10, 16)
    bad = x.clone()
    bad[3, 0] = float("nan")
    stats = rn.centring_stats(_fake_probe([x, bad]))
    assert math.isnan(stats.max_mean_over_std) and math.isnan(stats.max_identity_error)
    ctx = _ctx(probe=lambda processing: _fake_probe([x, bad]), info=SimpleNamespace(normalization="RMS"))
    with pytest.raises(NonFiniteMeasurement, match="centred_stream"):
        PREMISES["centred_stream"].check(ctx, "compat")


# --------------------------------------------------------------------------------------------
# RN-1p: a prompt without a content position is not judged (its content mean is NaN)
# --------------------------------------------------------------------------------------------
class _Ctx:
    """Just enough of :class:`lmfacts.context.ClaimContext` to run a per-prompt claim body."""

    def __init__(self, n_layers: int) -> None:
        from lmfacts.expectations import Resolved

        self.info = SimpleNamespace(n_layers=n_layers)
        self.expectation = Resolved(claim="RN-1p", params={"prompt_rate_min": 1.0})
        self.measured_values: dict[str, Any] = {}
        self.observed: list[float] = []

    def model(self) -> Any:
        return SimpleNamespace(info=self.info)

    def measured(self, **kw: Any) -> None:
        self.measured_values.update(kw)

    def observe(self, value: float) -> None:
        self.observed.append(value)

    def check(self, condition: bool, message: str, **operands: Any) -> None:
        from lmfacts.context import ClaimContext

        ClaimContext.check(SimpleNamespace(_rec=lambda: SimpleNamespace(reason=None)), condition, message,
                           **operands)  # the real operand validation and failure

    def __getattr__(self, name: str) -> Any:  # statistic, conventions, expected, witness, …
        return lambda *a, **kw: None


def _pass(classes: list[int], growth: float) -> rn.PromptPass:
    L, p = 4, len(classes)
    resid = np.outer(growth ** np.arange(L + 1), np.ones(p))
    return rn.PromptPass(tokens=list(range(p)), resid=resid, attn_out=np.ones((L, p)), mlp_out=np.ones((L, p)),
                         bos=None, content_from=1, classes=np.array(classes))


@pytest.mark.parametrize(("classes", "growth", "outcome"), [
    ([1, 3], 1.2, "not judged"),  # prepended BOS + the BOS id from the text: no content position
    ([1, 2, 2], 1.2, "passed"),
    ([1, 2, 2], 0.8, "failed"),
])
def test_rn1p_judges_only_prompts_with_content(monkeypatch: pytest.MonkeyPatch, classes: list[int], growth: float,
                                               outcome: str) -> None:
    from hypothesis import strategies as st

    import claims.test_rn_norm_growth as module
    from lmfacts.context import ClaimFailed

    monkeypatch.setattr(module, "run_prompts", lambda: st.just("<|endoftext|>"))
    monkeypatch.setattr(module.rn, "single_prompt_pass", lambda lm, text: _pass(classes, growth))
    ctx = _Ctx(n_layers=4)
    body = getattr(module.test_rn1_per_prompt_growth, "__wrapped__", module.test_rn1_per_prompt_growth)
    if outcome == "failed":
        with pytest.raises(ClaimFailed, match="growth rate 0.8000"):
            body(ctx)
        return
    body(ctx)
    counts = ctx.measured_values["position_counts"]
    if outcome == "not judged":
        assert ctx.measured_values["examples_without_content"] >= 1 and not ctx.observed
        assert counts["content"] == 0 and counts["bos_mid"] >= 1
    else:
        assert ctx.measured_values["examples_without_content"] == 0 and ctx.observed[0] == pytest.approx(1.2)
