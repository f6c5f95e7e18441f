"""What runs between the last block and the unembedding is measured, not assumed to be ``ln_final``.

Inputs that exposed it: a random OPT of OPT-350m's shape (post-LN, ``word_embed_proj_dim`` 32 ≠ ``hidden_size``
64: ``project_out`` before the head, no final norm) and a post-LN OPT of equal widths (nothing before the head).
The ``lens_readout`` premise decoded through ``bridge.ln_final``, which neither bridge has: LL-1 / LL-2 were
errors (``AttributeError: 'TransformerBridge' object has no attribute 'ln_final'``) instead of a skip naming the
premise and what the model runs there. :func:`lmfacts.readout.readout_path` measures it;
:func:`lmfacts.readout.readout_decode` composes it, checked here against transformers' own logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmfacts.measures.beyond import bridge_unembed
from lmfacts.models.loading import load_model
from lmfacts.readout import readout_decode, readout_path
from tests.helpers import load_report, run_pytest, save_random_causal_lm

TEXT = "The quick brown fox jumps over the lazy dog near the river bank."
OPT = dict(num_hidden_layers=3, hidden_size=64, ffn_dim=128, num_attention_heads=4, max_position_embeddings=128,
           pad_token_id=0, do_layer_norm_before=False)


def _hf_logits(d: Path, ids: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(str(d)).eval()(ids).logits[0]


@pytest.mark.parametrize(("proj_dim", "expected"), [(32, ["project_out"]), (64, [])])
def test_readout_path_of_post_ln_opt_decodes_to_transformers_logits(tmp_path: Path, proj_dim: int,
                                                                     expected: list[str]) -> None:
    d = save_random_causal_lm(tmp_path / "opt", "opt", word_embed_proj_dim=proj_dim, **OPT)
    lm = load_model(str(d))
    b = lm.bridge
    ids = b.tokenizer(TEXT)["input_ids"]
    path = readout_path(b, ids)
    assert path == expected
    last: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        b.run_with_hooks(torch.tensor([ids]), return_type=None,
                         fwd_hooks=[(f"blocks.{b.cfg.n_layers - 1}.hook_resid_post",
                                     lambda x, hook: last.__setitem__("x", x.detach()[0]))])
        decoded = readout_decode(b, path, bridge_unembed(b))(last["x"])
    ref = _hf_logits(d, torch.tensor([ids]))
    assert float((decoded - ref).norm() / ref.norm()) < 1e-5


def test_readout_path_of_a_pre_norm_model_is_its_final_norm() -> None:
    lm = load_model("tiny-gpt2")
    assert readout_path(lm.bridge, lm.bridge.tokenizer(TEXT)["input_ids"]) == ["ln_final"]


def test_ll_claims_decode_through_what_runs_before_the_head(tmp_path: Path) -> None:
    """OPT-350m's shape: the lens decodes through ``project_out`` (the lens_readout premise holds), so LL-1 / LL-2
    are judged (were errors: no attribute ln_final)."""
    d = save_random_causal_lm(tmp_path / "opt", "opt", word_embed_proj_dim=32, **OPT)
    proc, _ = run_pytest("claims/", "-m", "LL", "--model", str(d), "--max-prompts", "8",
                         report_dir=tmp_path / "reports", timeout=300)
    report = load_report(tmp_path / "reports")
    outcomes = {r["claim"]: r["outcome"] for r in report["results"]}
    assert set(outcomes) == {"LL-1", "LL-2"} and not {"skipped", "error"} & set(outcomes.values()), \
        (outcomes, proc.stdout[-2000:])
    premises = {p["name"]: p for r in report["results"] for p in r["premises"]}
    assert premises["lens_readout"]["holds"], premises["lens_readout"]
