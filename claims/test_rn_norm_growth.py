"""Residual-stream norm claims RN-1 … RN-9 (source: "Residual stream norms grow exponentially over
the forward pass", Heimersheim & Turner; seeds/residual-norms-grow-exponentially.txt)."""

from __future__ import annotations

from lmfacts.claims import claim
from lmfacts.context import ClaimContext


@claim("RN-1", title="residual norm grows exponentially", source="RN §Summary; §Comparison of various models",
       processing="compat")
def test_rn1_exponential_growth(ctx: ClaimContext) -> None:
    """RN-1: the residual stream's norm grows exponentially with depth.

    Statistic: mean L2 norm of ``blocks.{l}.hook_resid_pre`` (plus the final ``resid_post``) over
    content positions (BOS and padding excluded), averaged over every corpus token; the growth rate
    r = exp(least-squares slope of log-norm vs layer) over the window, with R² and a bootstrap CI
    over prompts. Window: the expectation's (gpt2-xl: layers 5–41, RN §Summary); by default the
    middle of the network, [round(0.1·L), round(0.85·L)]. Weight processing: TransformerLens compat
    mode (fold_ln, center_writing_weights), as the post's HookedTransformer. Pre-norm decoders only.
    """
    from lmfacts.stats.growth import fit_growth_rate

    info = ctx.info
    ctx.require(not info.is_encoder, "post-norm encoder: the stream is re-normalised after every sublayer, "
                                     "so residual growth claims do not apply (RN §Comparison, catalogue)")
    exp = ctx.expectation
    L = info.n_layers
    lo, hi = exp.get("window", [round(0.1 * L), round(0.85 * L)])
    probe = ctx.probe()
    norms = probe.resid.mean("content")
    fit = fit_growth_rate(probe.resid.prompt_means(), (lo, hi), seed=0)
    ctx.statistic("rate = exp(slope of log mean ‖resid_pre‖ vs layer), content tokens, over the window")
    ctx.conventions(hook="blocks.{l}.hook_resid_pre (+ final resid_post)", positions="content (no BOS, no pad)",
                    average="over all corpus tokens; CI by bootstrap over prompts", processing="compat")
    ctx.measured(rate=fit.rate, r2=fit.r2, ci=[fit.ci_low, fit.ci_high], window=[lo, hi], norms=norms.tolist(),
                 bos_norms=probe.resid.mean("bos").tolist(), n_prompts=probe.n_prompts)
    rate_lo, rate_hi = exp.get("rate_min", 1.0), exp.get("rate_max", None)
    if "rate" in exp.params:
        rate_lo, rate_hi = exp["rate"] - exp["rate_tol"], exp["rate"] + exp["rate_tol"]
    min_r2 = exp.get("min_r2", 0.9)
    ctx.expected(rate_band=[rate_lo, rate_hi], min_r2=min_r2)
    ctx.figure({"id": "rn1-norms", "title": "RN-1 mean residual norm per layer", "xlabel": "layer",
                "ylabel": "mean ‖resid_pre‖", "logy": True, "logx": False,
                "series": [{"label": "content", "x": list(range(len(norms))), "y": norms.tolist(), "style": "line"},
                           {"label": "BOS", "x": list(range(len(norms))),
                            "y": probe.resid.mean("bos").tolist(), "style": "dashed"}],
                "vspans": [{"lo": lo, "hi": hi, "label": "fit window"}]})
    ctx.check(fit.rate > rate_lo and (rate_hi is None or fit.rate < rate_hi),
              f"growth rate {fit.rate:.4f} outside the expected band [{rate_lo}, {rate_hi}] on layers {lo}–{hi}")
    ctx.check(fit.r2 >= min_r2, f"log-linear fit R² {fit.r2:.3f} < {min_r2}: growth is not exponential here")
