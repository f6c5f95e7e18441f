"""A threshold outside its quantity's natural domain is a usage error naming the entry, the key and the domain.

A share threshold of 1.5, a Spearman ρ bound of −1.5, an R² bound above 1 or a KS tolerance above 1 passed the
type check and fixed the claim's verdict whatever the model measured (a ✗ on every model, or a ✓ on every
model). Each such parameter declares its :class:`lmfacts.claims.Domain` once, in its registration
(``Param(..., domain=SHARE)``); :func:`lmfacts.expectations.validate_params` checks the users' values
against it when the claims are collected. A quantity with no natural range (a growth rate) declares none, so
a huge tolerance on it stays allowed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lmfacts.claims import SHARE, Domain, Param
from lmfacts.expectations import ExpectationFileError, load_all, load_file, validate_params
from tests.helpers import registered_claims, run_pytest, write_user_expectation


@pytest.mark.parametrize(("claim_id", "params", "shown", "domain"), [
    ("BF-1", "min_share = 1.5", "1.5", "[0, 1]"),
    ("AS-1", "min_sink_rate = -0.1", "-0.1", "[0, 1]"),
    ("AS-1", "epsilon = 2", "2", "[0, 1]"),
    ("LL-2", "agreement_threshold = 1.2", "1.2", "[0, 1]"),
    ("BF-2", "min_overlap = 1.01", "1.01", "[0, 1]"),
    ("BF-5", "min_rho = 1.5", "1.5", "[-1, 1]"),
    ("LL-1", "max_rho = -1.5", "-1.5", "[-1, 1]"),
    ("RN-1", "min_r2 = 1.01", "1.01", "(−∞, 1]"),
    ("BF-8", "r2_min = 2.0", "2.0", "(−∞, 1]"),
    ("BF-1", "bulk_tol = 1.5", "1.5", "[0, 1]"),
    ("LL-1", "kl_threshold = -0.5", "-0.5", "[0, ∞)"),
    ("BF-6", "n_prompts = 0", "0", "[1, ∞)"),
    ("AS-1", "min_prompts = -1", "-1", "[0, ∞)"),
])
def test_a_value_outside_its_domain_is_an_error_naming_it(tmp_path: Path, claim_id: str, params: str, shown: str,
                                                          domain: str) -> None:
    path = write_user_expectation(tmp_path, claim_id, params)
    key = params.split(" = ")[0]
    with pytest.raises(ExpectationFileError) as err:
        validate_params(load_file(path), registered_claims())
    text = str(err.value)
    for needle in (str(path), "expectation[0]", f"claim {claim_id}", f"params.{key}", f"{shown} is outside",
                   f"domain {domain}"):
        assert needle in text, (needle, text)


@pytest.mark.parametrize(("claim_id", "params"), [
    ("BF-1", "min_share = 1.0"),
    ("BF-1", "min_share = 0"),
    ("BF-5", "min_rho = -1"),
    ("LL-1", "max_rho = 1.0"),
    ("BF-8", "r2_min = -3.0"),  # R² has no lower bound: a negative floor is loose, not outside the domain
    ("RN-1", "min_r2 = 1"),
    ("RN-1", "rate_tol = 1e9"),  # a growth rate has no natural range: a huge tolerance cannot be told from a loose one
    ("BF-6", "n_prompts = 1"),
])
def test_values_inside_their_domain_pass(tmp_path: Path, claim_id: str, params: str) -> None:
    validate_params(load_file(write_user_expectation(tmp_path, claim_id, params)), registered_claims())


def test_a_user_file_with_a_share_of_1_5_is_a_fast_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "dom.toml"
    path.write_text('schema = 1\n[[expectation]]\nclaim = "BF-1"\nsource = "mine"\nmatch = { default = true }\n'
                    'params = { min_share = 1.5 }\n')
    proc, seconds = run_pytest("claims/", "-k", "BF-1", "--model", "tiny-llama", "-q", "--expectations", str(path),
                               report_dir=tmp_path / "r")
    err = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, err[-3000:]
    assert seconds < 10, seconds
    for needle in (str(path.resolve()), "expectation[0]", "claim BF-1", "params.min_share", "1.5 is outside",
                   "[0, 1]"):
        assert needle in err, (needle, err[-3000:])
    assert "Traceback" not in err


def test_every_committed_expectation_lies_in_its_domains() -> None:
    validate_params(load_all(), registered_claims())


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"default": 1.5, "domain": SHARE}, "default 1.5 is outside its domain"),
    ({"default": 0.5, "domain": (0, 1)}, "domain must be a Domain"),
    ({"type": list[float], "default": [0.5, 2.0], "domain": SHARE}, "outside its domain"),
])
def test_a_registration_whose_default_leaves_its_domain_is_an_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Param("x", kwargs.pop("type", float), **kwargs)


def test_domain_membership_and_text() -> None:
    d = Domain(None, 1, "r2")
    assert d.contains(-5.0) and d.contains(1) and not d.contains(1.0001)
    assert d.contains(None) and d.contains("text")  # other types are the type check's business
    assert SHARE.contains([0.0, 1.0]) and not SHARE.contains([0.5, 1.5])
    assert (str(SHARE), str(d), str(Domain(1, None, "k"))) == ("[0, 1]", "(−∞, 1]", "[1, ∞)")
