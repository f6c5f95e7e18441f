"""A supported architecture in a configuration TransformerBridge cannot build (transformer_lens 4.3: Falcon's new
decoder architecture with grouped K/V heads, Phi with qk_layernorm) is one clear error per test naming the model,
the configuration switch and where transformer_lens failed — not the bridge's traceback, once per claim.

Every model here is built in the test: random weights, 2 layers, d_model 64, the byte tokenizer. Where a later
transformer_lens builds a configuration, its test skips saying so (there is then nothing to explain).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_pytest, save_random_causal_lm

pytest.importorskip("torch")
pytest.importorskip("transformers")

#: (name, model_type, config kwargs, the switch the message must name)
UNBUILDABLE = (
    ("falcon-gqa", "falcon", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
                                  new_decoder_architecture=True, parallel_attn=True, alibi=False),
     "new_decoder_architecture=True"),
    ("phi-qkln", "phi", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                             partial_rotary_factor=0.5, qk_layernorm=True, max_position_embeddings=256),
     "qk_layernorm=True"),
)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("unbuildable")
    return {name: save_random_causal_lm(root / name, model_type, **cfg) for name, model_type, cfg, _ in UNBUILDABLE}


def _boot_or_skip(path: Path) -> BaseException:
    """Load ``path`` through lmfacts; return what it raised, or skip when transformer_lens now builds it."""
    from lmfacts.models.loading import load_model

    try:
        load_model(str(path))
    except Exception as exc:  # noqa: BLE001 - the test inspects whatever was raised
        return exc
    pytest.skip(f"this transformer_lens builds {path.name}: no build failure to explain")


@pytest.mark.parametrize(("name", "switch"), [(n, s) for n, _, _, s in UNBUILDABLE])
def test_build_failure_is_a_model_unavailable_error_naming_the_configuration(
        model_dirs: dict[str, Path], name: str, switch: str) -> None:
    from lmfacts.models.bridge_build import BridgeBuildError
    from lmfacts.models.names import ModelUnavailableError

    exc = _boot_or_skip(model_dirs[name])
    assert isinstance(exc, BridgeBuildError) and isinstance(exc, ModelUnavailableError), repr(exc)
    msg = str(exc)
    arch = "FalconForCausalLM" if name.startswith("falcon") else "PhiForCausalLM"
    assert f"model {str(model_dirs[name])!r} cannot be run" in msg and arch in msg, msg
    assert switch in msg and "transformer_lens" in msg and "RuntimeError" in msg, msg
    assert "not a finding about the model" in msg, msg
    assert isinstance(exc.__cause__, RuntimeError)  # the bridge's own exception is kept as the cause


def test_errors_raised_outside_transformer_lens_pass_through_unchanged(tmp_path: Path) -> None:
    """Only transformer_lens' failures are explained as such: an error transformers raises (here: a config.json
    naming a model_type it does not know), an OSError and lmfacts' own ModelUnavailableError keep their type."""
    import transformers

    from lmfacts.models.bridge_build import bridge_frame, explain_bridge_build_failure
    from lmfacts.models.names import ModelUnavailableError

    with pytest.raises(ValueError) as err, explain_bridge_build_failure("m", {"model_type": "llama"}):
        transformers.AutoConfig.for_model("no-such-model-type-xyz")
    assert bridge_frame(err.value) is None
    for exc in (OSError("disk"), ModelUnavailableError("offline"), KeyError("mine")):
        with pytest.raises(type(exc)) as caught, explain_bridge_build_failure("m", tmp_path):
            raise exc
        assert caught.value is exc


def test_changed_switches_are_the_booleans_away_from_the_config_class_defaults() -> None:
    from lmfacts.models.bridge_build import changed_switches

    cfg = {"model_type": "falcon", "new_decoder_architecture": True, "parallel_attn": True, "alibi": False,
           "multi_query": False, "hidden_size": 64, "use_cache": False}
    # FalconConfig's defaults: new_decoder_architecture False, parallel_attn True, alibi False, multi_query True
    assert changed_switches(cfg) == {"multi_query": False, "new_decoder_architecture": True}
    assert changed_switches({"model_type": "no-such-type", "x": True}) == {}
    assert changed_switches({}) == {}


def test_claim_run_fails_each_test_with_one_clear_line(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    """pytest claims/: every test of the model errors with the explanation, no traceback and no chained
    exception texts (the fixture used to fail inside its except block, and pytest printed both)."""
    path = model_dirs["falcon-gqa"]
    _boot_or_skip(path)
    proc, _ = run_pytest("claims/", "--model", str(path), "-k", "RN-1", "--max-prompts", "4", "-q",
                         report_dir=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert out.count(f"cannot load {path}: model {str(path)!r} cannot be run") >= 2, out[-3000:]  # RN-1, RN-1p
    assert "new_decoder_architecture=True" in out, out[-3000:]
    assert "Traceback" not in out and "direct cause" not in out and "During handling" not in out, out[-3000:]
    assert "split_with_sizes.py" not in out and "_tensor.py" not in out, out[-3000:]
