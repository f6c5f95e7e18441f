"""Premise ``sink_visible``: a sliding attention window narrower than the AS window is measured, and AS skips.

Input that exposed it: a random Mistral with ``sliding_window = 16`` (``pytest claims/ --model DIR``). AS-1
averaged the first position's attention over all 63 counted queries of its 64-token window, 48 of which the
mask hides it from: the measured sink share was 0.038 per layer (a uniform head: (H_16 − 1)/63) against
0.059 without the window ((H_64 − 1)/63), so a head that parks all the attention it can on the sink would
score 15/63 = 0.24 < ε = 0.3 and AS-1 would report ✗ about a statistic that is not Gu et al.'s. Planted
answers: the window set in the config (16), the layer types set in Gemma 3's config, the uniform-head
shares above.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lmfacts.measures.attention_window import measure_sink_visibility
from lmfacts.models.loading import load_model
from tests.helpers import save_random_causal_lm

SMALL = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=96, max_position_embeddings=128)


def _ids(n: int = 64) -> list[int]:
    return [int(i) for i in np.random.default_rng(0).integers(1, 257, size=n)]


def _load(tmp_path: Path, model_type: str, **config: Any) -> Any:
    return load_model(str(save_random_causal_lm(tmp_path / model_type, model_type, **config)))


@pytest.mark.parametrize("window", [16, 40])
def test_mistral_sliding_window_is_measured(tmp_path: Path, window: int) -> None:
    lm = _load(tmp_path, "mistral", sliding_window=window, **SMALL)
    vis = measure_sink_visibility(lm.bridge, _ids(), device="cpu")
    assert not vis.visible
    assert vis.blind == [list(range(window, 64))] * 2  # query q sees keys q-w+1 … q: from q = w key 0 is masked
    assert vis.windows == [window, window]
    ev = vis.evidence()
    assert f"from position {window} on" in ev and "sliding_window = " + str(window) in ev, ev


def test_full_attention_sees_the_sink(tmp_path: Path) -> None:
    lm = _load(tmp_path, "mistral", sliding_window=None, **SMALL)
    vis = measure_sink_visibility(lm.bridge, _ids(), device="cpu")
    assert vis.visible and vis.blind == [[], []], vis.evidence()
    # a window wider than the prompt hides nothing either
    lm = _load(tmp_path / "wide", "mistral", sliding_window=4096, **SMALL)
    assert measure_sink_visibility(lm.bridge, _ids(), device="cpu").visible


def test_gemma3_local_and_global_layers(tmp_path: Path) -> None:
    lm = _load(tmp_path, "gemma3_text", sliding_window=8, head_dim=16, pad_token_id=None,
               layer_types=["sliding_attention", "full_attention"], **SMALL)
    vis = measure_sink_visibility(lm.bridge, _ids(), device="cpu")
    assert vis.blind[0] == list(range(8, 64)) and vis.blind[1] == []
    assert not vis.visible
    assert vis.evidence().startswith("1 of 2 blocks (0)")
    assert vis.to_dict()["first_blind_query"] == [8, None]


def test_as_claims_rest_on_the_premise() -> None:
    import claims.test_as_sinks  # noqa: F401  (registers AS-1, AS-2)
    from lmfacts.claims import CLAIMS
    from lmfacts.premises import PREMISES, RUNTIME_NEEDS

    assert "sink_visible" in PREMISES and "sink_visible" in RUNTIME_NEEDS
    for cid in ("AS-1", "AS-2"):
        assert "sink_visible" in CLAIMS[cid].requires


def test_claims_show_hints_from_the_configuration() -> None:
    """``claims show AS-1 --model DIR`` says what the config suggests (the premise itself is measured at run time)."""
    from lmfacts.models.metadata import config_structure
    from lmfacts.premises import config_hint

    class Facts:
        def __init__(self, config: dict[str, Any]) -> None:
            self.structure = config_structure(config, "config.json")

    narrow = Facts({"sliding_window": 16, "num_hidden_layers": 4,
                    "layer_types": ["sliding_attention"] * 3 + ["full_attention"]})
    assert narrow.structure["sliding_window"][:3] == (16, 3, 4)
    assert "narrower than the 64-token window (config.json: sliding_window = 16 on 3 of 4 layers)" in \
        config_hint("sink_visible", narrow)
    assert "at least the 64-token window" in config_hint("sink_visible", Facts({"sliding_window": 4096,
                                                                                  "num_hidden_layers": 2}))
    # Qwen2 declares a window it does not use
    assert config_hint("sink_visible", Facts({"sliding_window": 16, "use_sliding_window": False})) == ""
    assert config_hint("sink_visible", Facts({"sliding_window": None})) == ""
    moe = Facts({"num_local_experts": 8})
    assert "mixture-of-experts MLP (config.json: num_local_experts = 8)" in config_hint("mlp_rebuild", moe)
    assert config_hint("mlp_rebuild", Facts({"num_experts": 1})) == ""
    nested = Facts({"text_config": {"sliding_window": 8, "num_hidden_layers": 2}})  # Gemma 3 multimodal
    assert "sliding_window = 8 on 2 of 2 layers" in config_hint("sink_visible", nested)


def test_a_run_skips_as_on_a_narrow_window_only(tmp_path: Path) -> None:
    """End to end, through the premise as registered (prompt choice, truncation to the AS window, the premise's
    verdict): a Mistral with sliding_window = 16 skips AS-1/AS-2 on ``sink_visible`` naming the window; the same
    model with full attention is not skipped on it (a mutation of the premise to 'always holds' or to measuring
    a prompt other than the window's leaves the measure-level tests above passing)."""
    from tests.helpers import load_report, run_pytest

    narrow = save_random_causal_lm(tmp_path / "narrow", "mistral", sliding_window=16,
                                   **{**SMALL, "max_position_embeddings": 256})
    full = save_random_causal_lm(tmp_path / "full", "mistral", sliding_window=None,
                                 **{**SMALL, "max_position_embeddings": 256})
    proc, _ = run_pytest("claims/test_as_sinks.py", "--model", str(narrow), "--model", str(full),
                         "--max-prompts", "24", report_dir=tmp_path / "reports")
    assert proc.returncode in (0, 1), proc.stdout[-3000:]
    results = {(r["claim"], Path(r["model"]).name): r for r in load_report(tmp_path / "reports")["results"]}
    for cid in ("AS-1", "AS-2"):
        r = results[(cid, "narrow")]
        assert r["outcome"] == "skipped" and "sink_visible" in r["reason"], r
        assert "from position 16 on" in r["reason"] and "sliding_window = 16" in r["reason"], r["reason"]
        assert "sink_visible" not in (results[(cid, "full")].get("reason") or ""), results[(cid, "full")]


def test_one_token_prompts_are_a_skip_not_an_error(tmp_path: Path) -> None:
    """Every corpus prompt a single token (one-letter lines with --prepend-bos never): the premise raised
    'the sink visibility check needs a prompt of at least 2 tokens, got 1' and AS-1/AS-2 were E. The mask is the
    model's, so it is measured on a check sentence (said in the evidence), and AS-1 skips for what it lacks:
    prompts of ≥ 64 tokens."""
    from tests.helpers import load_report, run_pytest

    prompts = tmp_path / "letters.txt"
    prompts.write_text("a\nb\nc\nd\n")
    proc, _ = run_pytest("claims/test_as_sinks.py", "--model", "tiny-llama", "--prompts", str(prompts),
                         "--prepend-bos", "never", "-k", "AS-1", report_dir=tmp_path / "reports")
    (r,) = load_report(tmp_path / "reports")["results"]
    assert r["outcome"] == "skipped", (r, proc.stdout[-2000:])
    assert "64 tokens" in r["reason"] and "at least 2 tokens" not in r["reason"], r["reason"]
