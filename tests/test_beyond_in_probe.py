"""The MA / AS / LL reductions ridden on the probe pass equal their standalone pass (issue 15, "in the single pass").

:func:`lmfacts.measures.beyond.attach_sample` wraps each reduction in a
:class:`~lmfacts.measures.beyond.SampledReduction` that feeds it only the sample's rows, cut to the first
128 positions of a causal model; :func:`lmfacts.probe.probe.run_probe` calls it from the same forward hooks
as the probe's own accumulators. On tiny Llama (causal, right padding), tiny GPT-2 with left padding and
tiny BERT (bidirectional, whole prompts), the accumulators must equal those of :func:`beyond_pass` over the
same texts up to float round-off of the batch shapes; ``extra_texts`` (reduction-only prompts) must leave
the probe's own statistics bit-identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmfacts.measures.beyond import MAX_TOKENS, attach_sample, beyond_pass
from lmfacts.models.loading import build_tiny_model
from lmfacts.probe.probe import run_probe

SHORT = ["Hello.", "The cat sat on the mat.", "x", "1 2 3", "A short line\nwith a newline."]
# ≥ 64 tokens (the AS inputs); two of them longer than the 128 positions a causal reduction reads
LONG = [" ".join(f"word{i} of sentence {k}." for i in range(n)) for k, n in enumerate((30, 40, 50, 90, 120, 35))]


def _kw(lm: Any, padding_side: str | None = None) -> dict[str, Any]:
    info = lm.info
    return dict(prepend_bos=info.prepends_bos, padding_side=padding_side or info.padding_side or "right",
                pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx,
                device=info.device)


def _compare(a: Any, b: Any) -> None:
    """Accumulators of the standalone pass ``a`` and of the probe-attached one ``b`` agree."""
    assert a.texts == b.texts and a.corpus_index == b.corpus_index and a.lengths == b.lengths
    ma, mb = a.massive.acc, b.massive.acc
    for layer in range(ma.n_layers):
        ea, eb = ma.entries(layer), mb.entries(layer)
        order_a = np.lexsort((ea[:, 4], ea[:, 3], ea[:, 2]))  # by prompt, position, dim
        order_b = np.lexsort((eb[:, 4], eb[:, 3], eb[:, 2]))
        assert np.array_equal(ea[order_a][:, 2:], eb[order_b][:, 2:])  # the same (prompt, position, dim, class)
        np.testing.assert_allclose(ea[order_a][:, :2], eb[order_b][:, :2], rtol=1e-5, atol=1e-6)
        ca, cb = ma.hist.counts[layer], mb.hist.counts[layer]
        assert ca.sum() == cb.sum()
        assert np.abs(ca - cb).sum() <= max(4, 1e-4 * ca.sum())  # round-off may move a value across a bin edge
    assert (a.sinks is None) == (b.sinks is None)
    if a.sinks is not None:
        assert a.sinks.prompt_ids and sorted(a.sinks.prompt_ids) == sorted(b.sinks.prompt_ids)
        for s in a.sinks.sets:
            for acc_a, acc_b in ((a.sinks.acc[s], b.sinks.acc[s]), (a.sinks.acc_incl[s], b.sinks.acc_incl[s])):
                np.testing.assert_allclose(acc_a.importance_sum, acc_b.importance_sum, rtol=1e-5, atol=1e-7)
                np.testing.assert_allclose(acc_a.mass_sum, acc_b.mass_sum, rtol=1e-5, atol=1e-7)
                assert np.array_equal(acc_a.n_queries, acc_b.n_queries)
        np.testing.assert_allclose(a.sinks.top_keys()[:, 4].sum(), b.sinks.top_keys()[:, 4].sum(), rtol=1e-5)
    assert (a.lens is None) == (b.lens is None)
    if a.lens is not None:
        la, lb = a.lens.acc, b.lens.acc
        assert np.array_equal(la.n_tokens, lb.n_tokens) and la.n_tokens.sum() > 0
        np.testing.assert_allclose(la.kl_sum, lb.kl_sum, rtol=1e-4, atol=1e-6)
        assert np.abs(la.agree - lb.agree).max() <= 1  # a tie broken differently by round-off at most


@pytest.mark.parametrize(("name", "padding", "causal"), [("tiny-llama", None, True), ("tiny-gpt2", "left", True),
                                                         ("tiny-bert", None, False)])
def test_attached_reductions_equal_the_standalone_pass(name: str, padding: str | None, causal: bool) -> None:
    lm = build_tiny_model(name, seed=0)
    kw = _kw(lm, padding)
    texts = SHORT + LONG
    lens = causal and bool(lm.info.has_lm_head)
    alone = beyond_pass(lm.bridge, texts, causal=causal, lens=lens, batch_size=4, **kw)
    att = attach_sample(lm.bridge, texts, range(len(texts)), causal=causal, lens=lens,
                        prepend_bos=kw["prepend_bos"], n_ctx=kw["n_ctx"])
    assert att.max_tokens == (MAX_TOKENS if causal else None)
    run_probe(lm.bridge, texts, batch_tokens=256, reductions=att.reductions, **kw)
    _compare(alone, att.result(0.0, "attached"))


def test_reduction_only_prompts_leave_the_probe_unchanged() -> None:
    """``extra_texts`` run in batches of their own: the probe's statistics of ``texts`` are bit-identical, and
    the reductions see the extra prompts under their own ids (the twin's pass)."""
    lm = build_tiny_model("tiny-llama", seed=0)
    kw = _kw(lm)
    plain = run_probe(lm.bridge, SHORT, **kw)
    twin_texts = LONG[:3] + SHORT[:1]  # three prompts only the reductions see, one shared with the probe
    pass_index = [len(SHORT), len(SHORT) + 1, len(SHORT) + 2, 0]
    att = attach_sample(lm.bridge, twin_texts, pass_index, causal=True, lens=True, prepend_bos=kw["prepend_bos"],
                        n_ctx=kw["n_ctx"], choose=False)
    mixed = run_probe(lm.bridge, SHORT, reductions=att.reductions, extra_texts=LONG[:3], extra_n_ctx=MAX_TOKENS, **kw)
    for name in ("resid", "attn_out", "mlp_out"):
        a, b = getattr(plain, name), getattr(mixed, name)
        assert a.sums.keys() == b.sums.keys()
        for k in a.sums:
            assert np.array_equal(a.sums[k], b.sums[k]) and np.array_equal(a.counts[k], b.counts[k])
        assert np.array_equal(a.per_prompt, b.per_prompt, equal_nan=True)
    for p0, p1 in zip(plain.points, mixed.points, strict=True):
        assert np.array_equal(p0.moments.s2, p1.moments.s2)
        assert np.array_equal(p0.cov_sum, p1.cov_sum)
    assert plain.n_content_tokens == mixed.n_content_tokens
    assert plain.position_counts == mixed.position_counts
    alone = beyond_pass(lm.bridge, twin_texts, causal=True, lens=True, batch_size=4, n_max=len(twin_texts), **kw)
    _compare(alone, att.result(0.0, "attached"))


#: tensor methods that move data to the host (a device sync on CUDA); on the CPU they are no-ops, but the call
#: itself is what a GPU run would wait on, so counting the calls checks the GPU behaviour here
HOST_READS = frozenset({"cpu", "item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"})
#: ops whose output size depends on the data (CUDA reads it on the host): also syncs
DATA_SIZED = frozenset({"nonzero", "argwhere", "masked_select", "bincount", "unique", "unique_consecutive"})


def _bool_index(args: tuple[Any, ...]) -> bool:
    """Whether a ``__getitem__``/``__setitem__`` call indexes with a bool tensor (a data-dependent size)."""
    import torch

    idx = args[1] if len(args) > 1 else None
    parts = idx if isinstance(idx, tuple) else (idx,)
    return any(isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in parts)


class _HostReads:
    """Counts host reads of tensors made by lmfacts code while ``active`` (a TorchFunctionMode)."""

    def __init__(self) -> None:
        from torch.overrides import TorchFunctionMode

        outer = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                fname = getattr(func, "__name__", "")
                if outer.active and (fname in HOST_READS or fname in DATA_SIZED
                                     or (fname == "__getitem__" and _bool_index(args))):
                    import sys

                    caller = sys._getframe(1)
                    if "/lmfacts/" in caller.f_code.co_filename.replace("\\", "/"):
                        outer.seen.append(f"{func.__name__} at {caller.f_code.co_name}:{caller.f_lineno}")
                return func(*args, **(kwargs or {}))

        self.mode, self.active, self.seen = Mode(), False, []


@pytest.mark.parametrize(("name", "causal"), [("tiny-llama", True), ("tiny-bert", False)])
def test_no_host_read_inside_a_forward_pass(name: str, causal: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12, device-resident reductions: the probe's hooks and the MA / AS / LL reductions ridden on it keep
    everything on the model's device during the forward pass; the host reads it only between passes."""
    lm = build_tiny_model(name, seed=0)
    kw = _kw(lm)
    texts = SHORT + LONG
    att = attach_sample(lm.bridge, texts, range(len(texts)), causal=causal, lens=causal,
                        prepend_bos=kw["prepend_bos"], n_ctx=kw["n_ctx"])
    reads = _HostReads()
    forward = type(lm.bridge).run_with_hooks

    def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
        reads.active = True
        try:
            return forward(self, *args, **kwargs)
        finally:
            reads.active = False

    monkeypatch.setattr(type(lm.bridge), "run_with_hooks", watched)
    with reads.mode:
        run_probe(lm.bridge, texts, batch_tokens=256, reductions=att.reductions, **kw)
    assert not reads.seen, reads.seen[:10]
    res = att.result(0.0, "attached")  # and the reductions did see the pass
    assert res.massive.acc.hist.counts.sum() > 0
    assert res.sinks is not None and res.sinks.prompt_ids
    assert (res.lens is not None) == causal
