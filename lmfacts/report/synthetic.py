"""A synthetic run directory (made-up numbers, two models, every outcome) for tests and demos.

Nothing here is a measurement: it exercises the renderers (log-scale figures, bands,
spans, a witness containing ``<script>``, superseded records, skips with reasons).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lmfacts.report.store import RunStore

MODELS = ("gpt2", "pythia-160m")
XSS = "<script>alert(1)</script>"


def _norm_curve(n_layers: int, rate: float, start: float) -> list[float]:
    return [start * rate**layer for layer in range(n_layers + 1)]


def run_info(run_id: str = "20250101T000000Z-abc1234") -> dict[str, Any]:
    """run.json content of the synthetic run."""
    return {
        "schema_version": 1,
        "run": {
            "id": run_id,
            "created_utc": "2025-01-01T00:00:00Z",
            "lmfacts_version": "0.1.0",
            "command": "pytest claims/ --model gpt2 --model pythia-160m --device cpu",
            "versions": {"torch": "2.5.1+cpu", "transformer_lens": "4.3.0", "transformers": "5.0.0",
                         "python": "3.11.9", "numpy": "2.1.0"},
            "hypothesis": {"profile": "dev", "seed": 1234, "max_examples": 20},
            "corpus": {"source": "fixtures/prompts/basic.txt", "sha256": "9f2c" + "0" * 60, "n_prompts": 64},
            "devices": ["cpu"],
            "options": {"report_dir": "reports", "dtype": "float32", "processing": "compat"},
        },
        "models": [
            {"name": "gpt2", "source": "hf:gpt2", "architecture": "GPT2LMHeadModel", "n_layers": 12, "d_model": 768,
             "device": "cpu", "dtype": "float32", "quantization": None, "weight_processing": "compat",
             "load_s": 3.21},
            {"name": "pythia-160m", "source": "hf:EleutherAI/pythia-160m", "architecture": "GPTNeoXForCausalLM",
             "n_layers": 12, "d_model": 768, "device": "cpu", "dtype": "float32", "quantization": None,
             "weight_processing": "compat", "load_s": 4.02},
        ],
    }


def _rn1(model: str, rate: float, outcome: str, reason: str | None) -> dict[str, Any]:
    norms = _norm_curve(12, rate, 3.0)
    lo = [v * 0.85 for v in norms]
    hi = [v * 1.15 for v in norms]
    return {
        "claim": "RN-1", "title": "exponential residual-norm growth", "nodeid": f"claims/test_rn.py::test_rn1[{model}]",
        "model": model, "device": "cpu", "dtype": "float32", "outcome": outcome,
        "statistic": "growth rate r = exp(slope of log mean ||resid_pre|| vs layer), layers 2–10",
        "measured": {"rate": rate, "ci": [rate - 0.01, rate + 0.01], "r2": 0.987, "norms": norms},
        "expected": {"rate_band": [1.02, 1.6]}, "tolerance": {"r2_min": 0.9}, "headline": ["rate"],
        "intervals": {"rate": {"value": rate, "ci": [rate - 0.01, rate + 0.01], "band": [1.02, 1.6], "level": 0.95,
                               "n_resamples": 1000, "method": "percentile",
                               "verdict": "passed" if 1.03 <= rate <= 1.59 else "failed"}},
        "source": "RN §Summary", "reason": reason,
        "conventions": {"hook": "resid_pre", "exclude_bos": True, "processing": "compat"},
        "robust": True, "witness": None, "control": {"rate_random_init": 1.001},
        "figures": [{
            "id": "rn1-norms", "title": f"{model}: mean residual norm by layer", "xlabel": "layer",
            "ylabel": "mean ||resid_pre||", "logx": False, "logy": True,
            "series": [
                {"label": "10–90% of prompts", "x": list(range(13)), "y": lo, "y2": hi, "style": "band"},
                {"label": "mean norm", "x": list(range(13)), "y": norms, "style": "line"},
                {"label": f"fit r={rate:.3f}", "x": [2, 10], "y": [norms[2], norms[10]], "style": "dashed"},
            ],
            "vspans": [{"lo": 2, "hi": 10, "label": "fit window"}],
        }],
        "duration_s": 2.5, "processing": "compat",
    }


def _bf7(model: str) -> dict[str, Any]:
    ranks = list(range(1, 769))
    trained = [40.0 * k**-0.6 for k in ranks]
    trained[-40:] = [v * math.exp(-(i + 1) / 8) for i, v in enumerate(trained[-40:])]
    mp = [2.0 * (1 - (k / 769) ** 0.5) + 0.05 for k in ranks]
    return {
        "claim": "BF-7", "title": "weight spectra follow a power law", "nodeid": f"claims/test_bf.py::test_bf7[{model}]",
        "model": model, "device": "cpu", "dtype": "float32", "outcome": "passed",
        "statistic": "power-law exponent of singular values vs rank over the bulk (W_in, block 5)",
        "measured": {"alpha": 0.6012, "r2": 0.993, "ks_vs_mp": 0.71}, "expected": {"alpha": [0.2, 1.5]},
        "headline": ["alpha"],
        "tolerance": None, "source": "BF §Weight spectra", "reason": None, "conventions": {"matrix": "W_in"},
        "robust": None, "witness": None, "control": {"ks_random_init_vs_mp": 0.03},
        "figures": [{
            "id": "bf7-spectrum", "title": f"{model}: singular values of W_in[5]", "xlabel": "rank",
            "ylabel": "singular value", "logx": True, "logy": True,
            "series": [{"label": "trained", "x": ranks, "y": trained, "style": "line"},
                       {"label": "Marchenko–Pastur (random init)", "x": ranks, "y": mp, "style": "dashed"}],
            "vspans": [],
        }],
        "duration_s": 0.8, "processing": "raw",
    }


def _rs1(model: str, kurt: float, outcome: str) -> dict[str, Any]:
    layers = list(range(13))
    return {
        "claim": "RS-1", "title": "kurtosis of residual features in the model basis",
        "nodeid": f"claims/test_rs.py::test_rs1[{model}]", "model": model, "device": "cpu", "dtype": "float32",
        "outcome": outcome, "statistic": "median kurtosis over layers (model basis vs random rotation)",
        "measured": {"kurtosis": kurt, "kurtosis_rotated": 3.02, "per_layer": [kurt] * 13},
        "headline": ["kurtosis", "kurtosis_rotated"],
        "expected": {"kurtosis_min": 10.0}, "tolerance": {"rotated_abs": 0.5},
        "source": "RS §Privileged Basis", "reason": None if outcome == "passed" else
        f"kurtosis {kurt} < 10 on prompt {XSS!r}",
        "conventions": {"per": "token"}, "robust": outcome == "passed",
        "witness": {"text": f"The cat {XSS} sat & \"quoted\"", "tokens": ["The", " cat", " <script>", "alert",
                                                                          "(1)", "</script>"], "value": kurt},
        "control": None,
        "figures": [{
            "id": "rs1-kurt", "title": f"{model}: kurtosis <by layer>", "xlabel": "layer", "ylabel": "kurtosis",
            "logx": False, "logy": True,
            "series": [{"label": "model basis", "x": layers, "y": [kurt * (1 + 0.1 * i) for i in layers],
                        "style": "points"},
                       {"label": "rotated", "x": layers, "y": [3.0] * 13, "style": "dashed"}],
            "vspans": [],
        }],
        "duration_s": 1.1, "processing": "compat",
    }


def records() -> list[dict[str, Any]]:
    """The synthetic result lines in write order (including one superseded line)."""
    simple = {"device": "cpu", "dtype": "float32", "expected": None, "tolerance": None, "conventions": {},
              "robust": None, "witness": None, "control": None, "figures": [], "duration_s": 0.1,
              "processing": "compat"}
    out = [
        # setup error first, superseded by the call's record for the same nodeid
        {**_rn1("gpt2", 1.21, "error", "setup failed"), "figures": []},
        _rn1("gpt2", 1.21, "passed", None),
        _rn1("pythia-160m", 0.97, "xfailed", "known exception: Pythia's norm decreases over layers 3–6"),
        {**simple, "claim": "RN-2", "title": "BOS is an exception", "nodeid": "claims/test_rn.py::test_rn2[gpt2]",
         "model": "gpt2", "outcome": "passed", "statistic": "BOS norm / median content norm, layer 6",
         "measured": {"ratio": 31.4159}, "expected": {"ratio_min": 5}, "source": "RN §BOS", "reason": None,
         "headline": ["ratio"]},
        {**simple, "claim": "RN-2", "title": "BOS is an exception",
         "nodeid": "claims/test_rn.py::test_rn2[pythia-160m]", "model": "pythia-160m", "outcome": "skipped",
         "statistic": "", "measured": {}, "source": "RN §BOS", "headline": ["ratio"],
         "reason": "tokenizer adds no BOS token (pythia-160m)",
         "premises": [{"name": "bos_prepended", "statement": "a BOS token starts every prompt", "holds": False,
                       "evidence": "tokenizer adds no BOS token (pythia-160m)"}]},
        {**simple, "claim": "RN-4", "title": "contribution bound (Appendix 1)",
         "nodeid": "claims/test_rn.py::test_rn4[gpt2]", "model": "gpt2", "outcome": "passed",
         "statistic": "min over layers/positions of bound slack", "measured": {"min_slack": 0.0012, "n_checked": 4096},
         "headline": ["min_slack"],
         "expected": {"min_slack": 0}, "tolerance": {"atol": 1e-5}, "source": "RN §Appendix 1", "reason": None},
        {**simple, "claim": "RN-4", "title": "contribution bound (Appendix 1)",
         "nodeid": "claims/test_rn.py::test_rn4[pythia-160m]", "model": "pythia-160m", "outcome": "error",
         "statistic": "", "measured": {}, "source": "RN §Appendix 1",
         "reason": "KeyError: 'blocks.0.hook_attn_out' (parallel attention)"},
        {**simple, "claim": "RN-8", "title": "Frobenius identity E||Wx||² = ||W||_F²",
         "nodeid": "claims/test_rn.py::test_rn8_random", "model": None, "outcome": "passed",
         "statistic": "relative error, 200 random matrices", "measured": {"max_rel_err": 0.0213, "nan_case": None},
         "expected": {"max_rel_err": 0.05}, "source": "RN footnote 5", "reason": None},
        _bf7("gpt2"),
        {**_bf7("pythia-160m"), "outcome": "xpassed", "reason": "expected to fail on parallel-attention models"},
        {**simple, "claim": "BF-3", "title": "weights nearly Gaussian", "nodeid": "claims/test_bf.py::test_bf3[gpt2]",
         "model": "gpt2", "outcome": "failed", "statistic": "max excess kurtosis over weight matrices",
         "measured": {"excess_kurtosis": 4.217, "worst": "blocks.0.attn.W_Q"}, "expected": {"excess_kurtosis": 0},
         "tolerance": {"abs": 1.0}, "source": "BF §Weights", "reason": "excess kurtosis 4.217 > 1 at blocks.0.attn.W_Q",
         "headline": ["excess_kurtosis"]},
        _rs1("gpt2", 48.2, "passed"),
        _rs1("pythia-160m", 6.3, "failed"),
    ]
    return out


def write_synthetic_run(run_dir: str | Path, *, truncate_last: bool = False) -> Path:
    """Write run.json and results.jsonl of the synthetic run into ``run_dir`` and return it.

    ``truncate_last`` appends half a JSON line at the end, as a run killed mid-write leaves.
    """
    store = RunStore(run_dir)
    store.write_run_info(run_info(Path(run_dir).name if Path(run_dir).name else "synthetic"))
    for rec in records():
        store.append_result(rec)
    if truncate_last:
        with open(store.results_jsonl, "a", encoding="utf-8") as fh:
            fh.write('{"claim": "RS-2", "title": "outlier feat')
    return store.run_dir
