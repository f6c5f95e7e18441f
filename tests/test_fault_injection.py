"""The outcome contract for every registered claim: a fault in a claim's statistic is ``error``, never a finding.

:data:`STATISTICS` names, for every claim, the function(s) its verdict is computed from. The whole
catalogue runs on one tiny model three times (all at once, in parallel subprocesses):

* control: no injection. Every claim reaches a verdict (``passed`` or ``failed``, never skipped or
  an error), so the injected runs below exercise the claim bodies, not a skip before them;
* ``raise``: every target raises ``RuntimeError("injected fault in <target>")`` → every claim is
  ``error`` with that message, naming one of *its own* targets;
* ``nan``: every target returns its real result with each float replaced by NaN → every claim is
  ``error`` naming the non-finite value (``ctx.check``'s ``NonFiniteMeasurement``), never
  ``failed`` / ``passed`` / ``skipped``.

The injection is :mod:`tests.fault_injection` (``-p tests.fault_injection``); its
``LMFACTS_INJECT_TRAINED_NORMS=1`` perturbs the tiny model's norm gains so that BF-4 has a
distribution to judge (HF initialises gains to exactly 1).

A new claim without an entry in :data:`STATISTICS` fails :func:`test_mapping_covers_every_registered_claim`.
"""

from __future__ import annotations

import importlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.helpers import REPO, load_report, run_pytest

MODEL = "tiny-gpt2"  # every claim reaches its statistic here (LayerNorm, BOS, causal, trained head)

GROWTH = "lmfacts.stats.growth:fit_growth_rate"
CURVATURE = "lmfacts.stats.growth:growth_curvature"
PROMPT_PASS = "lmfacts.measures.rn:single_prompt_pass"
WEIGHT_STATS = "lmfacts.measures.rn:layer_weight_stats"
GAUSSIAN = "lmfacts.stats.gaussianity:gaussian_with_outliers"
KURTOSIS = "lmfacts.stats.moments:kurtosis"
DEPTH_TREND = "lmfacts.stats.trends:depth_trend"
SPECTRUM = "lmfacts.stats.spectrum:compare_to_marchenko_pastur"
LOSS = "lmfacts.ablation:next_token_loss"
MASSIVE = "lmfacts.stats.massive:massive_activations"
LENS = "lmfacts.stats.logit_lens:logit_lens_stats"

#: claim id → the functions ("module:function") its verdict is computed from.
STATISTICS: dict[str, list[str]] = {
    "RN-1": [GROWTH, CURVATURE],  # rate and R² of the LSQ fit (measure_rn1); curvature where superexponential is set
    "RN-1p": [PROMPT_PASS, GROWTH],  # per-prompt norms → fitted rate (rn.fitted_rate)
    "RN-2": ["lmfacts.stats.bos:bos_anomaly"],
    "RN-2p": [PROMPT_PASS],  # the two prompts' BOS vectors; the deviation is computed in the claim
    "RN-3": [GROWTH],  # attn_out / mlp_out / stream rates (measure_rn3)
    "RN-4": ["lmfacts.measures.rn:measure_rn4"],  # the probe's per-block minimum slack
    "RN-4p": [PROMPT_PASS],  # per-prompt slack (PromptPass.bound_slack)
    "RN-5": [WEIGHT_STATS, GROWTH],  # ‖W_OV‖_F per layer, and both fitted rates (measure_rn5)
    "RN-6": [WEIGHT_STATS, GROWTH],  # MLP on random inputs, and both fitted rates
    "RN-7": [WEIGHT_STATS, GROWTH],  # random-input active share, and the real share's fitted rate
    "RN-8": ["lmfacts.stats.frobenius:frobenius_identity_error"],
    "RN-9": ["lmfacts.measures.rn:measure_rn9"],  # not centring_stats: the centred_stream premise uses that one
    "BF-1": [GAUSSIAN, KURTOSIS],
    "BF-2": ["lmfacts.stats.trends:overlap_from_counts", "lmfacts.stats.overlap:consistency_across"],
    "BF-3": [GAUSSIAN, KURTOSIS],
    "BF-4": ["lmfacts.stats.gaussianity:outlier_excess", "lmfacts.stats.gaussianity:robust_standardise", KURTOSIS],
    "BF-5": [DEPTH_TREND],
    "BF-6": ["lmfacts.gradients:per_example_qkv_gradients", GAUSSIAN],
    "BF-7": [SPECTRUM],
    "BF-8": [SPECTRUM, DEPTH_TREND],
    "RS-1": ["claims.test_rs_basis:_kurtosis_profile"],  # per-token kurtosis per point, model and rotated basis
    "RS-2": ["lmfacts.stats.outliers:outlier_feature_share", DEPTH_TREND],
    "RS-3": [LOSS],
    "RS-4": [LOSS],
    # MA / AS / LL: the has_massive_activations premise computes MASSIVE too, so a fault there is an error of
    # MA-2/3/4 and AS-2 before their bodies (tests/fault_injection.py plants the activation and a sink head)
    "MA-1": [MASSIVE],
    "MA-2": [MASSIVE],
    "MA-3": [MASSIVE],
    "MA-4": [MASSIVE, "lmfacts.stats.massive:bias_ablation_effect", LOSS],
    "AS-1": ["lmfacts.stats.sinks:sink_stats"],
    "AS-2": [MASSIVE],
    "LL-1": [LENS],
    "LL-2": [LENS],
}
TARGETS = sorted({t for ts in STATISTICS.values() for t in ts})
COMMON = ("claims/", "--model", MODEL, "--max-prompts", "8", "-p", "tests.fault_injection", "-p", "no_shrink", "-q")

# Loaded into the three runs: the lmfacts profile (loaded by then), without the shrink phase. A fault
# fails every example, and shrinking the prompts of RN-1p / RN-2p / RN-4p would rerun a forward pass
# per attempt for minutes; the first failing example already carries the error.
NO_SHRINK_PLUGIN = """
import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    from hypothesis import Phase, settings

    settings.register_profile("lmfacts-no-shrink", parent=settings.default,
                              phases=(Phase.explicit, Phase.reuse, Phase.generate))
    settings.load_profile("lmfacts-no-shrink")
"""


def _registered_claims() -> set[str]:
    from lmfacts.claims import CLAIMS

    for path in sorted((REPO / "claims").glob("test_*.py")):
        importlib.import_module(f"claims.{path.stem}")
    return set(CLAIMS)


def test_mapping_covers_every_registered_claim() -> None:
    registered = _registered_claims()
    assert set(STATISTICS) == registered, (f"no statistic named for {sorted(registered - set(STATISTICS))}; "
                                           f"not registered: {sorted(set(STATISTICS) - registered)}")
    for target in TARGETS:  # every target exists, so a renamed statistic is noticed here, not as a silent no-op
        module, name = target.split(":")
        assert callable(getattr(importlib.import_module(module), name, None)), target


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The catalogue on MODEL: control, ``raise`` and ``nan``, run in parallel; results by claim, per run."""
    plugin_dir = tmp_path_factory.mktemp("plugins")
    (plugin_dir / "no_shrink.py").write_text(NO_SHRINK_PLUGIN)
    base = {"LMFACTS_INJECT_TRAINED_NORMS": "1", "LMFACTS_INJECT_TARGETS": json.dumps(TARGETS),
            "PYTHONPATH": os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH")) if p),
            "OMP_NUM_THREADS": "1"}  # three runs share the cores: no OpenMP threads spinning against each other
    kinds = {"control": {}, "raise": {"LMFACTS_INJECT": "raise"}, "nan": {"LMFACTS_INJECT": "nan"}}

    def one(kind: str) -> tuple[str, dict[str, Any]]:
        report_dir = tmp_path_factory.mktemp(f"inject-{kind}")
        proc, _ = run_pytest(*COMMON, report_dir=report_dir, env={**base, **kinds[kind]}, timeout=400)
        assert proc.returncode in (0, 1), f"{kind}: exit {proc.returncode}\n{(proc.stdout + proc.stderr)[-4000:]}"
        return kind, {r["claim"]: r for r in load_report(report_dir)["results"] if r["model"] == MODEL}

    with ThreadPoolExecutor(len(kinds)) as pool:
        return dict(pool.map(one, kinds))


def _summary(results: dict[str, Any]) -> str:
    return "\n".join(f"{c}: {r['outcome']}: {(r.get('reason') or '')[:200]}" for c, r in sorted(results.items()))


def test_without_injection_every_claim_reaches_a_verdict(runs: dict[str, dict[str, Any]]) -> None:
    results = runs["control"]
    assert set(results) == set(STATISTICS), sorted(set(STATISTICS) ^ set(results))
    # inconclusive: an interval verdict whose CI straddles its band's edge (the statistic was computed and judged)
    no_verdict = {c: r for c, r in results.items() if r["outcome"] not in ("passed", "failed", "inconclusive")}
    assert not no_verdict, "the injected runs prove nothing for claims that do not reach a verdict:\n" + _summary(
        no_verdict)


def test_injected_raise_is_an_error_for_every_claim(runs: dict[str, dict[str, Any]]) -> None:
    results = runs["raise"]
    assert set(results) == set(STATISTICS), sorted(set(STATISTICS) ^ set(results))
    wrong = {}
    for claim_id, r in results.items():
        reason = r.get("reason") or ""
        own = [t for t in STATISTICS[claim_id] if f"injected fault in {t}" in reason]
        if r["outcome"] != "error" or (r.get("error") or {}).get("type") != "RuntimeError" or not own:
            wrong[claim_id] = r
    assert not wrong, "an injected exception must be an error naming the claim's own statistic:\n" + _summary(wrong)


def test_injected_nan_is_an_error_for_every_claim(runs: dict[str, dict[str, Any]]) -> None:
    results = runs["nan"]
    assert set(results) == set(STATISTICS), sorted(set(STATISTICS) ^ set(results))
    wrong = {}
    for claim_id, r in results.items():
        error = r.get("error") or {}
        if r["outcome"] != "error" or error.get("type") != "NonFiniteMeasurement" or "non-finite" not in r["reason"]:
            wrong[claim_id] = r
    assert not wrong, ("a NaN in a claim's statistic must reach its ctx.check operands (NonFiniteMeasurement, "
                       "naming the value), never a verdict or a skip:\n" + _summary(wrong))


def test_claims_catch_only_degenerate_samples() -> None:
    """A claim may exclude a sample the statistic cannot judge (``DegenerateSample``) and nothing else:
    a broader ``except`` (``ValueError``, ``Exception``, bare) would turn a fault into a skip or a verdict.
    (The injected ``RuntimeError`` above is not a ``ValueError``, so it cannot see such a clause itself.)"""
    import ast

    broad = []
    for path in sorted((REPO / "claims").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ExceptHandler):
                caught = ast.unparse(node.type) if node.type is not None else "<bare except>"
                if caught not in ("DegenerateSample", "stats.DegenerateSample", "lmfacts.stats.DegenerateSample"):
                    broad.append(f"{path.relative_to(REPO)}:{node.lineno}: except {caught}")
    assert not broad, "claims catch more than DegenerateSample:\n" + "\n".join(broad)
