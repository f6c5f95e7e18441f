"""Positions are classed by what they are: the BOS id in the middle of a prompt is not content.

Web text separates documents with the BOS string (``<|endoftext|>`` for GPT-2-style tokenizers;
/work/shared/field-inputs/bos-string-prompts.txt), which tokenises to the BOS id mid-prompt. The
probe and the per-prompt pass must class that position ``bos_mid``: out of the content statistics,
and out of the prepended-BOS statistics (it attends to the text before it, so it differs between
prompts). Every reference here is computed by hand from ``run_with_cache`` on each prompt alone,
with content positions found from the token ids directly (not through the probe's classifier).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from lmfacts.measures.rn import single_prompt_pass
from lmfacts.models.loading import build_tiny_model
from lmfacts.probe.batching import OutOfVocabularyError, tokenize_one
from lmfacts.probe.probe import run_probe

BOS_STRING = "<|endoftext|>"  # the tiny models' BOS (= EOS = PAD, id 0)
PLAIN = [
    "A normal sentence about the weather today.",
    "First document ends here. Second document starts here.",
    "Some code: print(\"end of text\") and more text.",
    "x",
]
WITH_BOS = [
    "A normal sentence about the weather today.",
    f"First document ends here.{BOS_STRING}Second document starts here.",
    f"Some code: print(\"{BOS_STRING}\") and more text.",
    f"{BOS_STRING}x{BOS_STRING}{BOS_STRING}",  # at the very start, and twice in a row
]
BATCH = 3  # two batches of different widths: padding and merging are exercised


def _close(a: Any, b: Any, rtol: float, what: str) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaN pattern differs"
    scale = float(np.nanmax(np.abs(b)))
    err = float(np.nanmax(np.abs(a - b)))
    assert err <= rtol * max(scale, 1e-30), f"{what}: max abs diff {err:.3e} > {rtol} × {scale:.3e}"


def _args(lm: Any, padding_side: str | None = None) -> dict[str, Any]:
    info = lm.info
    return dict(prepend_bos=info.prepends_bos, padding_side=padding_side or info.padding_side or "right",
                pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx)


def _bos_id(lm: Any) -> int:
    bos = lm.bridge.tokenizer.convert_tokens_to_ids(BOS_STRING)
    assert bos == lm.info.bos_token_id == 0
    return bos


def _hand(lm: Any, texts: list[str]) -> dict[str, Any]:
    """Per prompt: resid norms [L+1, p], content / prepended-BOS / mid-BOS position indices, vectors."""
    bridge, info = lm.bridge, lm.info
    L, bos_id = bridge.cfg.n_layers, _bos_id(lm)
    out: dict[str, Any] = {"resid": [], "attn": [], "content": [], "first": [], "mid": [], "vecs": [], "ids": []}
    for text in texts:
        ids, _ = tokenize_one(bridge, text, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
        start = 1 if info.prepends_bos else 0
        out["ids"].append(ids)
        out["first"].append([0] if info.prepends_bos else [])
        out["mid"].append([j for j in range(start, len(ids)) if ids[j] == bos_id])
        out["content"].append([j for j in range(start, len(ids)) if ids[j] != bos_id])
        with torch.no_grad():
            _, cache = bridge.run_with_cache(torch.tensor([ids]))
        pts = [cache[f"blocks.{i}.hook_resid_pre"][0] for i in range(L)] + [cache[f"blocks.{L - 1}.hook_resid_post"][0]]
        out["resid"].append(torch.stack([p.norm(dim=-1) for p in pts]).double().numpy())
        out["attn"].append(torch.stack([cache[f"blocks.{i}.hook_attn_out"][0].norm(dim=-1)
                                        for i in range(L)]).double().numpy())
        out["vecs"].append([p.double() for p in pts])
    return out


def _pad_count(lm: Any, texts: list[str], batch: int) -> int:
    lengths = [len(tokenize_one(lm.bridge, t, prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx)[0]) for t in texts]
    from lmfacts.probe.batching import padding_stats, plan_batches
    from lmfacts.probe.probe import DEFAULT_BATCH_TOKENS

    st = padding_stats(lengths, plan_batches(lengths, batch_tokens=DEFAULT_BATCH_TOKENS, max_prompts=batch))
    return st["padded_tokens"] - st["real_tokens"]


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-neox", "tiny-bert"])
def tiny(request: pytest.FixtureRequest) -> Any:
    return build_tiny_model(request.param, seed=1)


@pytest.fixture(scope="module")
def gpt2() -> Any:
    return build_tiny_model("tiny-gpt2", seed=1)


def test_the_field_input_contains_mid_prompt_bos(tiny: Any) -> None:
    """The inputs really put the BOS id inside the prompts (else the tests below prove nothing)."""
    ref = _hand(tiny, WITH_BOS)
    assert [len(m) for m in ref["mid"]] == [0, 1, 1, 3]


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_mid_prompt_bos_is_not_content(tiny: Any, padding_side: str) -> None:
    probe = run_probe(tiny.bridge, WITH_BOS, batch_size=BATCH, **_args(tiny, padding_side))
    ref = _hand(tiny, WITH_BOS)
    L = tiny.bridge.cfg.n_layers

    # content norm means, per point and per prompt, over the true content positions only
    allc = np.concatenate([r[:, c] for r, c in zip(ref["resid"], ref["content"], strict=True)], axis=1)
    _close(probe.resid.mean("content"), allc.mean(1), 1e-5, "resid content mean")
    _close(probe.resid.prompt_means(), np.stack([r[:, c].mean(1) for r, c in zip(ref["resid"], ref["content"],
                                                                                    strict=True)]),
           1e-5, "resid per-prompt content means")
    attc = np.concatenate([r[:, c] for r, c in zip(ref["attn"], ref["content"], strict=True)], axis=1)
    _close(probe.attn_out.mean("content"), attc.mean(1), 1e-5, "attn_out content mean")
    # the distribution statistics see the same tokens
    for p in (0, L):
        x = torch.cat([v[p][c] for v, c in zip(ref["vecs"], ref["content"], strict=True)])
        assert probe.points[p].n_tokens == x.shape[0]
        _close(probe.points[p].moments.mean(), x.mean(0).numpy(), 1e-5, f"point {p} content mean vector")
    # the mid-prompt BOS positions have a class of their own
    allm = np.concatenate([r[:, m] for r, m in zip(ref["resid"], ref["mid"], strict=True)], axis=1)
    _close(probe.resid.mean("bos_mid"), allm.mean(1), 1e-5, "resid bos_mid mean")

    n_content = sum(len(c) for c in ref["content"])
    assert probe.n_content_tokens == n_content
    assert probe.position_counts == {
        "content": n_content, "bos": sum(len(f) for f in ref["first"]), "bos_mid": sum(len(m) for m in ref["mid"]),
        "special": 0, "pad": _pad_count(tiny, WITH_BOS, BATCH)}
    assert probe.resid.counts["bos_mid"][0] == probe.position_counts["bos_mid"] == 5


def test_bos_statistics_unchanged_by_mid_prompt_bos(gpt2: Any) -> None:
    """The prepended BOS is the same vector in every prompt; a BOS id from the text is not pooled with it."""
    plain = run_probe(gpt2.bridge, PLAIN, batch_size=BATCH, **_args(gpt2))
    mixed = run_probe(gpt2.bridge, WITH_BOS, batch_size=BATCH, **_args(gpt2))
    _close(mixed.resid.mean("bos"), plain.resid.mean("bos"), 1e-5, "bos mean norm")
    for a, b in zip(mixed.bos_first, plain.bos_first, strict=True):
        _close(a, b, 1e-5, "first BOS vector")
    assert mixed.bos_max_rel_dev.max() < 1e-4
    assert mixed.position_counts["bos"] == plain.position_counts["bos"] == len(PLAIN)
    assert plain.position_counts["bos_mid"] == 0
    # the mid-prompt BOS really differs from the prepended one (so pooling it would break RN-2)
    assert not np.allclose(mixed.resid.mean("bos_mid"), mixed.resid.mean("bos"), rtol=1e-3)


def test_single_prompt_pass_classes_like_the_probe(tiny: Any) -> None:
    # (tiny-bert is post-LN: every resid norm is √d, so there only the counts can tell the classes apart)
    ref = _hand(tiny, WITH_BOS)
    passes = [single_prompt_pass(tiny, text) for text in WITH_BOS]
    for k, (text, pp) in enumerate(zip(WITH_BOS, passes, strict=True)):
        _close(pp.content_means(), ref["resid"][k][:, ref["content"][k]].mean(1), 1e-5, f"content means of {text!r}")
    for k, (text, pp) in enumerate(zip(WITH_BOS, passes, strict=True)):
        c = ref["content"][k]
        assert pp.position_counts == {"content": len(c), "bos": len(ref["first"][k]), "bos_mid": len(ref["mid"][k]),
                                      "special": 0, "pad": 0}
        alone = run_probe(tiny.bridge, [text], **_args(tiny))
        _close(alone.resid.prompt_means()[0], pp.content_means(), 1e-5, "probe vs per-prompt pass")
        assert alone.position_counts == pp.position_counts


def test_other_special_tokens_are_not_content() -> None:
    """A special token other than BOS (an in-vocabulary ``<|sep|>``) is classed ``special``."""
    lm = build_tiny_model("tiny-gpt2", seed=1, config_overrides={"vocab_size": 260})
    tok = lm.bridge.tokenizer
    tok.add_special_tokens({"additional_special_tokens": ["<|sep|>"]})
    sep = tok.convert_tokens_to_ids("<|sep|>")
    assert sep < lm.bridge.cfg.d_vocab == 260
    text = "left side<|sep|>right side"
    ids, _ = tokenize_one(lm.bridge, text, prepend_bos=True, n_ctx=lm.info.n_ctx)
    assert ids.count(sep) == 1
    with torch.no_grad():
        _, cache = lm.bridge.run_with_cache(torch.tensor([ids]))
    content = [j for j in range(1, len(ids)) if ids[j] != sep]
    want = cache["blocks.1.hook_resid_pre"][0].norm(dim=-1)[content].double().mean().item()
    probe = run_probe(lm.bridge, [text, "plain"], **_args(lm))
    assert probe.position_counts["special"] == 1
    assert probe.resid.prompt_means()[0, 1] == pytest.approx(want, rel=1e-5)
    pp = single_prompt_pass(lm, text)
    assert pp.position_counts["special"] == 1
    assert pp.content_means()[1] == pytest.approx(want, rel=1e-5)


def test_out_of_vocabulary_pad_id_never_reaches_the_model(gpt2: Any) -> None:
    args = _args(gpt2)
    ok = run_probe(gpt2.bridge, PLAIN, batch_size=BATCH, **args)
    args["pad_id"] = gpt2.bridge.cfg.d_vocab + 3  # a <pad> added past the embedding
    bad = run_probe(gpt2.bridge, PLAIN, batch_size=BATCH, **args)
    _close(bad.resid.mean("content"), ok.resid.mean("content"), 1e-6, "content mean with an out-of-vocab pad id")
    assert bad.position_counts == ok.position_counts


def test_out_of_vocabulary_token_is_a_clear_error() -> None:
    """A special token the tokenizer has but the embedding lacks stops with a named error, not an IndexError."""
    lm = build_tiny_model("tiny-gpt2", seed=1)
    lm.bridge.tokenizer.add_special_tokens({"additional_special_tokens": ["<|extra|>"]})
    text = "a<|extra|>b"
    with pytest.raises(OutOfVocabularyError, match="outside the model's vocabulary"):
        run_probe(lm.bridge, [text], **_args(lm))
    with pytest.raises(OutOfVocabularyError, match="d_vocab 257"):
        single_prompt_pass(lm, text)
