"""LL-1 / LL-2 on a model with fewer than 3 blocks: not applicable (skip with the reason), not a ValueError.

Input that exposed it: a random 2-block Qwen2-MoE (``pytest claims/ --model DIR``): both claims were errors,
``ValueError: window [1, 2] must hold ≥ 3 points within [0, 2]``, although the user gave no window; the
default window 1 … L of a 2-block model has 2 points, too few for a depth trend. Planted answer: the block
count of the model built here.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load_report, run_pytest, save_random_causal_lm


def test_two_blocks_skip_the_logit_lens_trend(tmp_path: Path) -> None:
    d = save_random_causal_lm(tmp_path / "llama2", "llama", num_hidden_layers=2, hidden_size=64,
                              num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
                              max_position_embeddings=128)
    proc, _ = run_pytest("claims/test_ll_logit_lens.py", "--model", str(d), "--max-prompts", "8",
                         report_dir=tmp_path / "reports")
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = {r["claim"]: r for r in load_report(tmp_path / "reports")["results"]}
    for cid in ("LL-1", "LL-2"):
        assert results[cid]["outcome"] == "skipped", results[cid]
        assert "2 block(s)" in results[cid]["reason"] and "too few for a depth trend" in results[cid]["reason"]


def test_two_blocks_bf2_names_its_one_point_window(tmp_path: Path) -> None:
    """BF-2 on a 2-block model: its default window holds one residual point, so the overlap across blocks has
    nothing to compare; the skip says that (it said "only 1 residual point(s) in 1–1 have ≥ 2 content tokens
    (content tokens per point: [579])", blaming the token count, which was ample — helper 38)."""
    d = save_random_causal_lm(tmp_path / "llama2", "llama", num_hidden_layers=2, hidden_size=64,
                              num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
                              max_position_embeddings=128)
    run_pytest("claims/", "-k", "BF-2", "--model", str(d), "--max-prompts", "8", "--no-baselines",
               report_dir=tmp_path / "reports")
    (r,) = [r for r in load_report(tmp_path / "reports")["results"] if r["claim"] == "BF-2"]
    assert r["outcome"] == "skipped" and "holds 1 residual point" in r["reason"], (r["outcome"], r["reason"])
