"""A model whose blocks are not attention + MLP (Mamba), or whose probe hooks never fire (GPT-1), is refused at
load with one clear message.

Input that exposed it: a random ``MambaForCausalLM`` saved with the byte tokenizer. TransformerBridge lists
Mamba, Mamba2, RWKV … as supported and boots them, but their blocks have a ``mixer`` and no attention or MLP,
so each of the 32 claims errored with a TransformerLens traceback ``KeyError: "Hook name
'blocks.0.hook_attn_out' does not exist on this model."``. Planted answer: the blocks' missing hooks,
measured on the bridge's hook table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import save_random_causal_lm


@pytest.fixture(scope="module")
def mamba_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_causal_lm(tmp_path_factory.mktemp("mamba") / "mamba", "mamba", hidden_size=32,
                                 num_hidden_layers=2, state_size=4, expand=2)


def test_mamba_is_refused_naming_the_missing_sublayers(mamba_dir: Path) -> None:
    from lmfacts.models.loading import load_model
    from lmfacts.models.names import ModelUnavailableError

    with pytest.raises(ModelUnavailableError) as err:
        load_model(str(mamba_dir))
    msg = str(err.value)
    assert "cannot be run" in msg and "MambaArchitectureAdapter" in msg, msg
    assert "hook_attn_out at block(s) 0–1" in msg and "hook_mlp_out at block(s) 0–1" in msg, msg
    assert "hook_mixer_out instead" in msg and "Remove --model" in msg, msg
    assert "\n" not in msg  # one paragraph


def test_attention_mlp_blocks_pass() -> None:
    from lmfacts.models.loading import build_tiny_model
    from lmfacts.models.support import check_bridge_sublayers

    check_bridge_sublayers("tiny-llama", build_tiny_model("tiny-llama").bridge)  # raises nothing


def test_hooks_that_never_fire_are_refused(tmp_path: Path) -> None:
    """Input that exposed it: a random post-LN ``OpenAIGPTLMHeadModel`` (GPT-1). TransformerLens 4.3's adapter
    declares ``blocks.{l}.hook_resid_post`` but never fires it, so the probe's last point stayed empty: RS-1
    errored with ``median_kurtosis=nan`` and LL-1/LL-2 with "the last block never ran". Planted answer: the
    hooks that did not fire on a forward pass."""
    from lmfacts.models.loading import load_model
    from lmfacts.models.names import ModelUnavailableError

    d = save_random_causal_lm(tmp_path / "gpt1", "openai-gpt", n_layer=2, n_embd=32, n_head=2, n_positions=64)
    with pytest.raises(ModelUnavailableError) as err:
        load_model(str(d))
    msg = str(err.value)
    assert "OpenAIGPTArchitectureAdapter" in msg and "never fire" in msg, msg
    assert "hook_resid_post at block(s) 0–1" in msg and "Remove --model" in msg and "\n" not in msg, msg
