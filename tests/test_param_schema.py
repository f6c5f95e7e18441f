"""One schema per claim: declared parameters, validated expectation files, each value's origin.

* A misspelt or mistyped ``params`` key in an expectation file is a usage error before any model
  loads (< 5 s), naming the file, the entry, the claim, the key and the valid keys.
* A parameter no entry sets takes the claim's declared default (origin ``"claim default"``); a
  matching entry overrides it (origin ``"<file>#<index> (<kind>: <source>)"``), and the run's record
  carries both (``record.params``).
* Registration rejects a repeated parameter name, a headline key that is not a string, a default
  of the wrong type; a :data:`lmfacts.claims.REQUIRED` parameter nobody gives is an error.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from lmfacts.claims import CLAIMS, REQUIRED, ClaimSpec, Param, claim, headline_value
from lmfacts.expectations import (
    CLAIM_DEFAULT,
    ExpectationFileError,
    ModelFacts,
    default_dir,
    defaults_of,
    load_all,
    load_file,
    resolve,
    validate_params,
)
from tests.helpers import REPO, load_report, registered_claims, run_pytest, write_user_expectation


def _copy_expectations(tmp_path: Path) -> Path:
    out = tmp_path / "exp"
    shutil.copytree(default_dir(), out)
    return out


def _facts(name: str, *, encoder: bool = False) -> ModelFacts:
    return ModelFacts(names=(name,), architecture="GPT2LMHeadModel", is_encoder=encoder, normalization="LN",
                      quantized=False)


# ------------------------------------------------------------------------------------------------
# the committed files and claims
# ------------------------------------------------------------------------------------------------
def test_every_committed_entry_fits_its_claims_schema() -> None:
    specs = registered_claims()
    validate_params(load_all(), specs)  # raises on an unknown key or a wrong type
    for spec in specs.values():
        assert all(isinstance(h, str) and h for h in spec.headline), spec.id
        assert spec.headline, f"{spec.id} declares no headline value"


def test_claims_read_no_defaults_of_their_own() -> None:
    """Defaults live only in the registrations: no ``exp.get(key, default)`` in a claim module."""
    pattern = re.compile(r"\b(exp|expectation)\.get\(")
    hits = [f"{p.name}:{i}" for p in (REPO / "claims").glob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


# ------------------------------------------------------------------------------------------------
# validation of expectation files (unit level and through pytest)
# ------------------------------------------------------------------------------------------------
def _write(tmp_path: Path, params: str, claim_id: str = "RN-5") -> Path:
    return write_user_expectation(tmp_path, claim_id, params, "x.toml")


@pytest.mark.parametrize("params, needles", [
    ("ratio_tl = 0.02", ["unknown parameter 'ratio_tl'", "claim RN-5", "valid keys", "ratio_tol", "b_o_rel_max"]),
    ('ratio_tol = "0.02"', ["params.ratio_tol", "is not a float"]),
    ("ratio_tol = true", ["is not a float"]),
    ("window = [5.0, 30.0]", ["params.window", "list[int]"]),
    ("window = 5", ["list[int]"]),
    ("baseline = { rate_ratio = 1.0 }", ["unknown parameter 'baseline'", "valid keys"]),  # baselines: fixtures/baselines
])
def test_unknown_key_or_wrong_type_is_an_error(tmp_path: Path, params: str, needles: list[str]) -> None:
    path = _write(tmp_path, params)
    with pytest.raises(ExpectationFileError) as err:
        validate_params(load_file(path), registered_claims())
    text = str(err.value)
    assert str(path) in text and "expectation[0]" in text
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.mark.parametrize("params", ["ratio_tol = 1", "window = [5, 30]"])
def test_well_typed_values_pass(tmp_path: Path, params: str) -> None:
    validate_params(load_file(_write(tmp_path, params)), registered_claims())  # an int is a valid float


def test_misspelt_key_in_a_copied_file_is_a_fast_usage_error(tmp_path: Path) -> None:
    """The acceptance test: a real run (not --collect-only) stops before loading the model, in < 5 s."""
    exp = _copy_expectations(tmp_path)
    rn = exp / "rn.toml"
    text = rn.read_text()
    assert text.count("ratio_tol = 0.02, b_o_rel_max") == 1  # RN-5's published gpt2-xl entry
    rn.write_text(text.replace("ratio_tol = 0.02, b_o_rel_max", "ratio_tl = 0.02, b_o_rel_max"))
    index = next(e.index for e in load_file(rn) if "ratio_tl" in e.params)
    proc, seconds = run_pytest("claims/", "-k", "RN-5", "--model", "tiny-gpt2", "-q", report_dir=tmp_path / "r",
                               env={"LMFACTS_EXPECTATIONS_DIR": str(exp)})
    err = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, err
    assert seconds < 5, seconds
    for needle in (str(rn), f"expectation[{index}]", "claim RN-5", "'ratio_tl'", "valid keys", "ratio_tol",
                   "window"):
        assert needle in err, (needle, err)


def test_wrong_type_in_a_copied_file_is_a_usage_error(tmp_path: Path) -> None:
    exp = _copy_expectations(tmp_path)
    rn = exp / "rn.toml"
    text = rn.read_text()
    assert text.count("window = [5, 41], rate = 1.045") == 1  # RN-1's published gpt2-xl entry
    rn.write_text(text.replace("window = [5, 41], rate = 1.045", 'window = "5-41", rate = 1.045'))
    proc, seconds = run_pytest("claims/", "--collect-only", "-q", report_dir=tmp_path / "r",
                               env={"LMFACTS_EXPECTATIONS_DIR": str(exp)})
    err = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, err
    assert "rn.toml" in err and "params.window" in err and "list[int]" in err and "RN-1" in err


# ------------------------------------------------------------------------------------------------
# resolution: declared defaults, overrides, origins
# ------------------------------------------------------------------------------------------------
def test_resolution_starts_from_declared_defaults_and_records_origins() -> None:
    spec = registered_claims()["RN-1"]
    entries = load_all()
    plain = resolve(entries, "RN-1", _facts("some-new-model"), spec)
    declared = {p.name: p.default for p in spec.params}
    assert plain.params == declared  # no entry: exactly the declared defaults
    assert set(plain.origins.values()) == {CLAIM_DEFAULT}
    assert plain["min_r2"] == 0.9 and plain["rate_min"] == 1.0 and plain["window"] is None

    xl = resolve(entries, "RN-1", _facts("gpt2-xl"), spec)
    published = next(e for e in entries if e.claim == "RN-1" and "gpt2-xl" in e.match.get("models", []))
    origin = f"rn.toml#{published.index} (published: {published.source})"
    assert xl["window"] == [5, 41] and xl["rate"] == 1.045 and xl["min_r2"] == 0.95
    assert xl.origins["window"] == origin and xl.origins["min_r2"] == origin
    assert xl.origins["rate_min"] == CLAIM_DEFAULT and xl["rate_min"] == 1.0  # not set by the entry
    described = xl.describe()
    assert described["rate"] == {"value": 1.045, "origin": origin, "unit": "×/layer"}
    assert described["superexponential"] == {"value": None, "origin": CLAIM_DEFAULT, "unit": ""}


def test_a_predicate_entry_overrides_the_declared_default() -> None:
    """RS-2's threshold: declared 6, the decoder entry of rs.toml says 10, the encoder one 4."""
    spec, entries = registered_claims()["RS-2"], load_all()
    dec = resolve(entries, "RS-2", _facts("m"), spec)
    enc = resolve(entries, "RS-2", _facts("m", encoder=True), spec)
    assert (dec["threshold"], enc["threshold"]) == (10.0, 4.0)
    assert dec.origins["threshold"].startswith("rs.toml#") and "default: " in dec.origins["threshold"]
    assert dec.origins["min_rho"] == CLAIM_DEFAULT
    assert next(p.default for p in spec.params if p.name == "threshold") == 6.0


def test_undeclared_parameter_read_is_a_key_error() -> None:
    exp = defaults_of(registered_claims()["RN-5"])
    with pytest.raises(KeyError, match="ratio_tl"):
        exp["ratio_tl"]
    with pytest.raises(KeyError, match="declares no parameter"):
        defaults_of(registered_claims()["RN-5"], ratio_tl=0.1)


def test_required_parameter_without_a_value_is_an_error(tmp_path: Path) -> None:
    spec = ClaimSpec("ZZ-1", "t", "s", "raw", "m.f", params=(Param("anchor", float, REQUIRED, "", "needed"),))
    with pytest.raises(ExpectationFileError, match="anchor.*required"):
        resolve([], "ZZ-1", _facts("m"), spec)
    path = tmp_path / "z.toml"
    path.write_text('schema = 1\n[[expectation]]\nclaim = "ZZ-1"\nkind = "published"\nsource = "paper"\n'
                    'match = { models = ["m"] }\nparams = { anchor = 2 }\n')
    got = resolve(load_file(path), "ZZ-1", _facts("m"), spec)
    assert got["anchor"] == 2 and got.origins["anchor"] == "z.toml#0 (published: paper)"


def test_the_record_lists_each_parameter_with_its_origin(tmp_path: Path) -> None:
    """End to end on tiny-gpt2: an entry for the model overrides min_r2; the rest stay claim defaults."""
    exp = _copy_expectations(tmp_path)
    (exp / "zz_local.toml").write_text(
        'schema = 1\n[[expectation]]\nclaim = "RN-1"\nkind = "published"\nsource = "a lab note"\n'
        'match = { models = ["tiny-gpt2"] }\nparams = { min_r2 = 0.5 }\n')
    proc, _ = run_pytest("claims/", "-k", "RN-1 and not RN-1p", "--model", "tiny-gpt2", "--max-prompts", "12", "-q",
                         report_dir=tmp_path / "r", env={"LMFACTS_EXPECTATIONS_DIR": str(exp)})
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    (rec,) = [r for r in load_report(tmp_path / "r")["results"] if r["claim"] == "RN-1"]
    params: dict[str, Any] = rec["params"]
    assert params["min_r2"] == {"value": 0.5, "origin": "zz_local.toml#0 (published: a lab note)", "unit": ""}
    assert params["rate_min"] == {"value": 1.0, "origin": CLAIM_DEFAULT, "unit": "×/layer"}
    assert set(params) == {p.name for p in registered_claims()["RN-1"].params}  # unset baseline parameters are not listed
    assert rec["headline"] == ["rate"]
    if rec["outcome"] in ("passed", "failed"):
        assert isinstance(headline_value(rec["measured"], "rate"), float)
        assert rec["expected"]["min_r2"] == 0.5  # the claim used the overriding value


# ------------------------------------------------------------------------------------------------
# registration
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"params": (Param("tol", float, 0.1), Param("tol", float, 0.2))}, "declared twice"),
    ({"params": ({"name": "tol"},)}, "Param"),
    ({"headline": ("rate", 3)}, "headline key 3"),
    ({"headline": "rate"}, "tuple of measured keys"),
    ({"headline": ("rate", "rate")}, "repeats"),
    ({"headline": ("",)}, "non-empty"),
])
def test_bad_registrations_are_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        claim("ZZ-9", title="t", source="s", **kwargs)
    assert "ZZ-9" not in CLAIMS


@pytest.mark.parametrize("args, match", [
    (("Tol", float, 0.1), "snake_case"),
    (("tol", float, "0.1"), "not a float"),
    (("n", int, 2.5), "not a int"),
    (("w", list[int], [1.5, 2]), r"not a list\[int\]"),
])
def test_bad_params_are_errors(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Param(*args)


def test_param_types_follow_toml() -> None:
    f, i, li, lf = Param("f", float), Param("i", int), Param("li", list[int]), Param("lf", list[float])
    assert f.accepts(1) and f.accepts(1.5) and not f.accepts(True) and not f.accepts("1")
    assert i.accepts(3) and not i.accepts(3.0) and not i.accepts(False)
    assert li.accepts([1, 2]) and not li.accepts([1, 2.0]) and not li.accepts((1, 2))
    assert lf.accepts([11.5, 83]) and not lf.accepts([1, "x"])
    rtol = Param("rtol", float | dict)
    assert rtol.accepts(0.05) and rtol.accepts({"x": 0.05}) and not rtol.accepts([0.05])


def test_headline_value_reads_dotted_paths() -> None:
    measured = {"rate": 1.05, "attn_out": {"rate": 1.02}, "per_k": [{"delta_head": 3.0}]}
    assert headline_value(measured, "rate") == 1.05
    assert headline_value(measured, "attn_out.rate") == 1.02
    assert headline_value(measured, "per_k.0.delta_head") == 3.0
    with pytest.raises(KeyError, match="per_k.1"):
        headline_value(measured, "per_k.1.delta_head")
