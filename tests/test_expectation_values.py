"""Well-typed expectation values that leave a claim nothing to judge are usage errors naming the entry.

A ``nan`` / ``inf`` threshold, a negative tolerance, a ``*_min`` above its ``*_max`` or a window that
selects nothing passed the type check and turned the claim's verdict into a constant: a failure (✗)
on every model, which the report would present as a finding, or an error (E) deep in the run. They
are rejected by :func:`lmfacts.expectations.validate_params` when the claims are collected.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lmfacts.expectations import ExpectationFileError, load_all, load_file, validate_params
from tests.helpers import registered_claims, write_user_expectation


@pytest.mark.parametrize(("claim_id", "params", "needles"), [
    ("RN-1", "min_r2 = nan", ["params.min_r2", "not finite"]),
    ("RN-1", "rate_max = inf", ["params.rate_max", "not finite"]),
    ("RN-1", "rate_min = -inf", ["params.rate_min", "not finite"]),
    ("RN-5", "ratio_tol = -0.01", ["params.ratio_tol", "negative tolerance"]),
    ("MA-1", "max_abs_rtol = -1.0", ["params.max_abs_rtol", "negative tolerance"]),
    ("RN-9", "tol = -1e-4", ["params.tol", "negative tolerance"]),
    ("RN-1", "rate_min = 2.0, rate_max = 1.0", ["rate_min = 2.0 is above rate_max = 1.0"]),
    ("RN-7", "share_rate_min = 1.5, share_rate_max = 1.2", ["share_rate_min = 1.5 is above share_rate_max"]),
    ("RN-1", "window = [3, 1]", ["params.window", "0 ≤ lo ≤ hi"]),
    ("RN-3", "mlp_window = [-1, 2]", ["params.mlp_window", "0 ≤ lo ≤ hi"]),
    ("RN-1", "window = [1, 2, 3]", ["params.window", "[lo, hi]"]),
])
def test_value_that_empties_the_verdict_is_a_usage_error(tmp_path: Path, claim_id: str, params: str,
                                                          needles: list[str]) -> None:
    path = write_user_expectation(tmp_path, claim_id, params)
    with pytest.raises(ExpectationFileError) as err:
        validate_params(load_file(path), registered_claims())
    text = str(err.value)
    assert str(path) in text and "expectation[0]" in text and f"claim {claim_id}" in text, text
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.mark.parametrize(("claim_id", "params"), [
    ("RN-1", "rate_min = 1.0, rate_max = 1.0"),  # a point band is narrow, not empty
    ("RN-1", "window = [2, 2]"),
    ("RN-5", "ratio_tol = 0"),
    ("RN-1", "rate_min = 0.5"),
])
def test_boundary_values_pass(tmp_path: Path, claim_id: str, params: str) -> None:
    validate_params(load_file(write_user_expectation(tmp_path, claim_id, params)), registered_claims())


def test_committed_expectations_pass_the_value_checks() -> None:
    validate_params(load_all(), registered_claims())
