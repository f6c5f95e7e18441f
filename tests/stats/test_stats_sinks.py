"""Planted-answer tests for lmfacts.stats.sinks (AS-1, AS-2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats import DegenerateSample
from lmfacts.stats.sinks import (
    SinkAccumulator,
    counted_queries,
    key_importance,
    sink_mass,
    sink_stats,
    top_key_hits,
)


def softmax_masked(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    s = np.where(allowed, scores, -np.inf)
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def causal_patterns(lengths: list[int], T: int, n_heads: int, sink_heads: set[int], *, seed: int = 0,
                    left_pad: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left-padded causal patterns [b, H, T, T]: heads in ``sink_heads`` have scores forced (+20)
    to the first real token; head 0 is uniform over visible keys; the others random.
    Returns (attn, valid [b, T], first [b, T])."""
    rng = np.random.default_rng(seed)
    b = len(lengths)
    valid = np.zeros((b, T), bool)
    for i, n in enumerate(lengths):
        if left_pad:
            valid[i, T - n:] = True
        else:
            valid[i, :n] = True
    first = valid & ~np.concatenate([np.zeros((b, 1), bool), valid[:, :-1]], 1)
    causal = np.tril(np.ones((T, T), bool))
    allowed = causal[None] & valid[:, None, :]  # [b, q, k]
    allowed = allowed | ~valid[:, :, None] & np.eye(T, dtype=bool)[None]  # pad queries: self only
    attn = np.empty((b, n_heads, T, T))
    for h in range(n_heads):
        scores = np.zeros((b, T, T)) if h == 0 else rng.standard_normal((b, T, T))
        if h in sink_heads:
            scores = scores + 20.0 * first[:, None, :]
        attn[:, h] = softmax_masked(scores, allowed)
    return attn, valid, first


def harmonic(n: int) -> float:
    return float(np.sum(1.0 / np.arange(1, n + 1)))


def test_planted_sink_head_counted_uniform_not() -> None:
    T, L, H = 32, 3, 4
    acc = SinkAccumulator(L, H)
    for layer in range(L):
        attn, valid, first = causal_patterns([T] * 6, T, H, {2} if layer == 1 else set(), seed=layer)
        acc.add_pattern(layer, attn, first, counted_queries(valid, first))
    res = sink_stats(acc)
    assert res.sink_heads == [[1, 2]]
    assert res.head_sink_rate == pytest.approx(1 / 12) and res.sink_rate == pytest.approx(1 / 12)
    assert res.share[1][2] > 0.99
    # a uniform causal head over queries 1..T-1: mean of 1/(q+1) = (H_T - 1) / (T - 1) < 0.3
    assert res.share[0][0] == pytest.approx((harmonic(T) - 1) / (T - 1))
    assert res.layer_sink_rate == pytest.approx([0.0, 0.25, 0.0])
    assert res.layer_share[1] > res.layer_share[0] + 0.2


def test_gu_convention_includes_the_sink_query() -> None:
    T = 16
    attn, valid, first = causal_patterns([T] * 3, T, 1, set())
    acc = SinkAccumulator(1, 1)
    acc.add_pattern(0, attn, first, counted_queries(valid, first, include_sink_queries=True))
    assert sink_stats(acc).share[0][0] == pytest.approx(harmonic(T) / T)


def test_short_inputs_make_uniform_heads_look_like_sinks() -> None:
    # why the claim uses Gu et al.'s 64-token inputs: a uniform head on 4 tokens has share 0.36 > 0.3
    attn, valid, first = causal_patterns([4] * 2, 4, 1, set())
    acc = SinkAccumulator(1, 1)
    acc.add_pattern(0, attn, first, counted_queries(valid, first))
    assert sink_stats(acc).share[0][0] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert sink_stats(acc).sink_heads == [[0, 0]]


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(8, 24), min_size=1, max_size=6), seed=st.integers(0, 1000),
       sink=st.integers(1, 3))
def test_left_padding_sink_on_first_real_token(lengths: list[int], seed: int, sink: int) -> None:
    T = max(lengths)
    attn, valid, first = causal_patterns(lengths, T, 4, {sink}, seed=seed)
    acc = SinkAccumulator(1, 4)
    acc.add_pattern(0, attn, first, counted_queries(valid, first))
    res = sink_stats(acc)
    assert [1, 0] not in res.sink_heads and [0, sink] in res.sink_heads
    expected = np.mean([(harmonic(n) - 1) / (n - 1) for n in lengths])
    assert res.share[0][0] == pytest.approx(expected)


def test_streaming_equals_one_shot() -> None:
    lengths = [20, 13, 17, 9, 20, 11, 15]
    attn, valid, first = causal_patterns(lengths, 20, 4, {3}, seed=5)
    qm = counted_queries(valid, first)
    one = SinkAccumulator(1, 4)
    one.add_pattern(0, attn, first, qm)
    parts = SinkAccumulator(1, 4)
    other = SinkAccumulator(1, 4)
    for s in (slice(0, 2), slice(2, 5)):
        parts.add_pattern(0, attn[s], first[s], qm[s])
    other.add(0, sink_mass(attn[5:], first[5:]), qm[5:])
    parts.merge(other)
    a, b = sink_stats(one).to_dict(), sink_stats(parts).to_dict()
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float), rtol=1e-12)


def test_encoder_sinks_on_cls_and_sep() -> None:
    # bidirectional, right-padded: [CLS] at 0, [SEP] at the last real token; one head parks on [SEP]
    T, lengths = 12, [12, 8, 10]
    b = len(lengths)
    valid = np.zeros((b, T), bool)
    sep = np.zeros((b, T), bool)
    for i, n in enumerate(lengths):
        valid[i, :n] = True
        sep[i, n - 1] = True
    cls = np.zeros((b, T), bool)
    cls[:, 0] = True
    sinks = cls | sep
    allowed = np.broadcast_to(valid[:, None, :], (b, T, T)) | ~valid[:, :, None] & np.eye(T, dtype=bool)
    attn = np.stack([softmax_masked(np.zeros((b, T, T)), allowed),
                     softmax_masked(20.0 * sep[:, None, :], allowed)], 1)
    acc = SinkAccumulator(1, 2)
    acc.add_pattern(0, attn, sinks, counted_queries(valid, sinks))
    res = sink_stats(acc)
    assert res.share[0][0] == pytest.approx(np.mean([2 / n for n in lengths]))
    assert res.share[0][1] > 0.99 and res.sink_heads == [[0, 1]]


def test_key_importance_and_top_key_hits_for_as2() -> None:
    T = 16
    attn, valid, first = causal_patterns([T] * 4, T, 3, {1}, seed=2)
    imp = key_importance(attn, valid)
    assert imp.shape == (4, 3, T)
    # uniform causal head: importance of key k = mean over q >= k of 1/(q+1)
    np.testing.assert_allclose(imp[0, 0], [np.mean(1 / np.arange(k + 1, T + 1)) for k in range(T)])
    massive = np.zeros((4, T), bool)
    massive[:, 0] = True
    assert top_key_hits(imp, massive, heads=np.array([False, True, False])) == (4, 4)
    delim = np.zeros((4, T), bool)
    delim[:, 7] = True
    assert top_key_hits(imp, delim, heads=np.array([False, True, False])) == (0, 4)


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda: sink_mass(np.full((1, 1, 2, 2), np.nan), np.ones((1, 2), bool)), ValueError, "NaN"),
    (lambda: sink_mass(np.full((1, 1, 2, 2), 3.0), np.ones((1, 2), bool)), ValueError, "softmax"),
    (lambda: sink_mass(np.full((1, 1, 2, 2), 0.5), np.ones((1, 2))), ValueError, "bool"),
    (lambda: sink_mass(np.full((1, 1, 2, 2), 0.5), np.ones((1, 3), bool)), ValueError, "shape"),
    (lambda: SinkAccumulator(1, 2).add(0, np.zeros((1, 3, 2)), np.ones((1, 2), bool)), ValueError, "heads"),
    (lambda: SinkAccumulator(1, 1, epsilon=1.5), ValueError, "epsilon"),
    (lambda: sink_stats(SinkAccumulator(2, 1)), DegenerateSample, "no prompt"),
])
def test_bad_input_raises_with_a_clear_message(call, exc, match) -> None:  # noqa: ANN001
    with pytest.raises(exc, match=match):
        call()


def test_prompt_without_counted_queries_is_skipped_and_counted() -> None:
    acc = SinkAccumulator(1, 1)
    acc.add(0, np.full((2, 1, 3), 0.5), np.array([[True, True, False], [False, False, False]]))
    res = sink_stats(acc)
    assert res.n_prompts == 1 and res.skipped_prompts == 1 and res.share[0][0] == pytest.approx(0.5)
    only_empty = SinkAccumulator(1, 1)
    only_empty.add(0, np.full((1, 1, 3), 0.5), np.zeros((1, 3), bool))
    with pytest.raises(DegenerateSample):
        sink_stats(only_empty)
