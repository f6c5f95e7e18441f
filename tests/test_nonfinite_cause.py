"""A model that overflows in float16 (finite in float32 and bfloat16): every claim that meets the NaN/inf is an
error (E) naming the cause — the first HF module whose output is not finite and float16's range — never ✗, and
the compat check does not blame compat processing for the model's own NaN. Weight claims are still judged.
The model is a tiny random Llama built in the test whose MLPs write ~1e5 into the stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import load_report, run_pytest, save_random_causal_lm

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForCausalLM

    d = save_random_causal_lm(tmp_path_factory.mktemp("ovf") / "overflow-llama", "llama", num_hidden_layers=2,
                              hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                              max_position_embeddings=128, tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_pretrained(d)
    with torch.no_grad():
        for layer in model.model.layers:  # |mlp_out| ~ 1e5 > 65504 in float16; float32/bf16 hold it
            layer.mlp.up_proj.weight.mul_(3000.0)
            layer.mlp.down_proj.weight.mul_(3000.0)
    model.save_pretrained(d)
    return d


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFACTS_CACHE_DIR", str(tmp_path / "cache"))


def test_diagnosis_names_the_first_overflowing_module(overflowing: Path) -> None:
    from lmfacts.compat_check import CompatProcessingError, NonFiniteLogitsError, checked_compat_processing
    from lmfacts.models.loading import load_model
    from lmfacts.nonfinite import diagnose_nonfinite

    lm = load_model(str(overflowing), dtype="float16")
    cause = diagnose_nonfinite(lm)
    assert cause is not None
    assert "model.layers.0.mlp.down_proj is inf" in cause and "65504" in cause and "--dtype" in cause, cause
    assert "_original_component" not in cause and "hook_" not in cause  # the HF model's names, no bridge wrappers
    with pytest.raises(NonFiniteLogitsError) as err:  # the model's own NaN, not compat's doing
        checked_compat_processing(lm)
    assert not isinstance(err.value, CompatProcessingError) and "before any compat processing" in str(err.value)
    assert lm.info.weight_processing == "raw"
    lm.release()
    for dtype in ("float32", "bfloat16"):
        lm = load_model(str(overflowing), dtype=dtype)
        assert diagnose_nonfinite(lm) is None, dtype
        lm.release()


def test_damaged_weights_are_named_whatever_the_dtype(tmp_path: Path) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.nonfinite import diagnose_nonfinite

    d = save_random_causal_lm(tmp_path / "nan-llama", "llama", num_hidden_layers=1, hidden_size=32,
                              num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
                              max_position_embeddings=64)
    lm = load_model(str(d))
    with torch.no_grad():
        lm.bridge.original_model.model.layers[0].mlp.up_proj.weight[0, :3] = float("nan")
    cause = diagnose_nonfinite(lm)
    assert cause is not None and "weights hold NaN/inf" in cause and "up_proj.weight (3 of" in cause, cause


def test_is_nonfinite_error_kinds() -> None:
    from lmfacts.context import NonFiniteMeasurement
    from lmfacts.nonfinite import is_nonfinite_error

    assert is_nonfinite_error(FloatingPointError("x")) and is_nonfinite_error(NonFiniteMeasurement("x"))
    assert is_nonfinite_error(RuntimeError("rebuild check residual_add: relative error nan (non-finite …)"))
    assert not is_nonfinite_error(ValueError("window [1, 2] must hold ≥ 3 points"))
    assert not is_nonfinite_error(KeyError("nancy")) and not is_nonfinite_error(None)


def test_float16_overflow_is_an_error_naming_its_cause_never_a_failure(overflowing: Path, tmp_path: Path) -> None:
    proc, _ = run_pytest("claims/", "--model", str(overflowing), "--dtype", "float16", "--max-prompts", "4", "-q",
                         "-k", "RN-1 or BF-1 or RS-3 or BF-3", report_dir=tmp_path / "r",
                         env={"LMFACTS_CACHE_DIR": str(tmp_path / "c")})
    out = proc.stdout + proc.stderr
    results = {r["claim"]: r for r in load_report(tmp_path / "r")["results"]}
    assert set(results) >= {"RN-1", "BF-1", "RS-3", "BF-3"}, out[-3000:]
    for claim in ("RN-1", "BF-1", "RS-3"):  # compat check, probe, loss: each errs with the cause appended
        r = results[claim]
        assert r["outcome"] == "error", (claim, r["outcome"], r["reason"])
        assert "cause: running in float16, the output of model.layers.0.mlp.down_proj is inf" in r["error"]["message"]
        assert "changed what" not in r["error"]["message"]  # not blamed on compat processing
    assert results["BF-3"]["outcome"] in ("passed", "failed")  # weights are finite: still judged
