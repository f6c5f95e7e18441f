"""RN-1's R² ≥ min_r2 on a model run in bfloat16: an R² within one bfloat16 epsilon (7.8e-3) of the bound is
inconclusive, not a ✗ — rounding the activations moves R² by about that much (4e-4 on SmolLM2 between float32 and
bfloat16), so it, not the model, would decide the side. Planted: the bound set 1e-3 above tiny-gpt2's measured
bfloat16 R² (a ✗ before), then 0.01 above it (beyond the margin: still a ✗)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import load_report, run_pytest

pytest.importorskip("torch")

ARGS = ("claims/", "-k", "RN-1 and not RN-1p", "--model", "tiny-gpt2", "--dtype", "bfloat16", "--max-prompts", "4",
        "--no-baselines", "-q")


def _rn1(tmp_path: Path, name: str, *extra: str) -> dict:
    proc, _ = run_pytest(*ARGS, *extra, report_dir=tmp_path / name)
    (rec,) = [r for r in load_report(tmp_path / name)["results"] if r["claim"] == "RN-1"]
    return rec


def _bound(tmp_path: Path, min_r2: float) -> str:
    path = tmp_path / f"r2_{min_r2}.toml"
    path.write_text('schema = 1\n[[expectation]]\nclaim = "RN-1"\nkind = "published"\nsource = "test"\n'
                    f'match = {{ models = ["tiny-gpt2"] }}\nparams = {{ min_r2 = {min_r2!r} }}\n')
    return str(path)


def test_r2_within_the_dtype_rounding_margin_is_inconclusive(tmp_path: Path) -> None:
    base = _rn1(tmp_path, "base")
    r2 = base["measured"]["r2"]
    assert base["tolerance"]["r2_rounding_margin"] == pytest.approx(2.0 ** -7)
    near = _rn1(tmp_path, "near", "--expectations", _bound(tmp_path, round(r2 + 1e-3, 6)))
    assert near["outcome"] == "inconclusive", (near["outcome"], near.get("reason"))
    assert "rounding margin" in near["reason"] and "bfloat16" in near["reason"]
    assert r2 + 0.01 <= 1.0, r2  # room above R² for a bound beyond the margin (an R² bound > 1 is a usage error)
    far = _rn1(tmp_path, "far", "--expectations", _bound(tmp_path, round(r2 + 0.01, 6)))
    assert far["outcome"] == "failed" and "R²" in far["reason"], (far["outcome"], far.get("reason"))
