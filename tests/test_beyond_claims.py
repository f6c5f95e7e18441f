"""The MA / AS / LL claims end to end on the tiny models, and their per-batch reductions on planted data.

* ``test_beyond_claims_reach_an_outcome``: the three claim files on tiny-llama (causal,
  RMSNorm) and tiny-bert (bidirectional, post-LN) gives every one of the eight claims on both models an
  outcome that is not ``error`` (a verdict, or a skip naming its premise: the random models have no massive
  activation, the encoder no causal mask).
* The reductions of :mod:`lmfacts.measures.beyond` fed batch by batch: a planted massive activation and a
  planted sink pattern are found where they were put, whatever the batch split and padding side.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from lmfacts.measures.beyond import BatchView, MassiveReduction, SinkReduction, choose_sample
from lmfacts.probe.batching import BOS, CONTENT, PAD
from tests.helpers import load_report, run_pytest

BEYOND = ("MA-1", "MA-2", "MA-3", "MA-4", "AS-1", "AS-2", "LL-1", "LL-2")
MODELS = ("tiny-llama", "tiny-bert")
FILES = ("claims/test_ma_massive.py", "claims/test_as_sinks.py", "claims/test_ll_logit_lens.py")


def test_beyond_claims_reach_an_outcome(tmp_path: Any) -> None:
    # the three files, not ``claims/ -k "MA or AS or LL"``: -k is case-insensitive, so "LL" also selects every
    # claim on tiny-llama (and on smollm2) and "MA" nothing more; the files select exactly the eight claims
    proc, _ = run_pytest(*FILES, *(a for m in MODELS for a in ("--model", m)),
                         "--max-prompts", "16", "-p", "no:cacheprovider", "-q", report_dir=tmp_path, timeout=900)
    assert proc.returncode in (0, 1), (proc.stdout + proc.stderr)[-4000:]
    results = {(r["claim"], r["model"]): r for r in load_report(tmp_path)["results"] if r["claim"] in BEYOND}
    missing = [(c, m) for c in BEYOND for m in MODELS if (c, m) not in results]
    assert not missing, f"no result for {missing}"
    errors = {k: (r.get("reason") or "")[:300] for k, r in results.items() if r["outcome"] == "error"}
    assert not errors, errors
    # the encoder skips the decoder-only claims by premise, with the premise named
    for c in ("LL-1", "LL-2", "MA-4"):
        r = results[(c, "tiny-bert")]
        assert r["outcome"] == "skipped" and "premise" in r["reason"], r


def _view(lengths: list[int], p: int, *, left: bool, index: list[int], vocab: int = 50, seed: int = 0) -> BatchView:
    g = torch.Generator().manual_seed(seed)
    b = len(lengths)
    tokens = torch.randint(3, vocab, (b, p), generator=g)
    valid = torch.zeros((b, p), dtype=torch.bool)
    for i, n in enumerate(lengths):
        if left:
            valid[i, p - n:] = True
        else:
            valid[i, :n] = True
    classes = torch.where(valid, torch.tensor(CONTENT, dtype=torch.int8), torch.tensor(PAD, dtype=torch.int8))
    view = BatchView(tokens, valid, classes, index)
    classes[view.first] = BOS
    tokens[view.first] = 1
    return view


def _massive_batch(view: BatchView, d: int, n_layers: int, *, dim: int, from_layer: int, seed: int) -> list[torch.Tensor]:
    """Block outputs [b, p, d]: N(0, 1), plus 1e4 at (first real position, ``dim``) from ``from_layer`` on."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for layer in range(n_layers):
        x = torch.randn((*view.tokens.shape, d), generator=g)
        if layer >= from_layer:
            x[view.first, dim] = 1e4
        out.append(x)
    return out


@pytest.mark.parametrize("left", [False, True])
def test_massive_reduction_finds_the_planted_activation(left: bool) -> None:
    from lmfacts.stats.massive import massive_activations

    L, d, dim = 5, 32, 11
    lengths = [20, 14, 9, 17, 12, 20]
    red = MassiveReduction(L, delimiters=[2])
    for split in ([0, 1, 2], [3, 4, 5]):  # two batches, corpus indices 10…15
        view = _view([lengths[i] for i in split], 20, left=left, index=[10 + i for i in split], seed=split[0])
        red.start(view)
        for layer, x in enumerate(_massive_batch(view, d, L, dim=dim, from_layer=2, seed=split[0])):
            red.on(f"blocks.{layer}.hook_resid_post", x)
        red.end()
    ma = massive_activations(red.acc)
    assert ma.emergence_layer == 2 and ma.has_massive == [False, False, True, True, True]
    assert ma.dims == [dim] and ma.class_counts == {"first": 6 * 3}
    assert all(s["positions"] == [0] and s["n_prompts"] == 6 for s in ma.sites)
    assert abs(ma.median[3] / 0.6745 - 1) < 0.05  # median |N(0,1)|


def test_sink_reduction_counts_a_planted_sink_head() -> None:
    from lmfacts.stats.sinks import sink_stats

    L, H, T = 2, 3, 64
    red = SinkReduction(L, H, causal=True, n_tokens=T)
    lengths = [70, 64, 40]  # the 40-token prompt is too short and is dropped
    view = _view(lengths, 70, left=False, index=[0, 1, 2])
    red.start(view)
    p = 70
    causal = torch.tril(torch.ones(p, p))
    uniform = causal / causal.sum(-1, keepdim=True)
    sink = torch.zeros(p, p)
    sink[:, 0] = 0.9
    sink += 0.1 * uniform
    for layer in range(L):
        a = uniform.expand(3, H, p, p).clone()
        if layer == 1:
            a[:, 2] = sink  # head 2 of layer 1 parks 90 % of every query's attention on the first token
        red.on(f"blocks.{layer}.attn.hook_pattern", a)
    red.end()
    st = sink_stats(red.acc["first"])
    assert st.n_prompts == 2 and red.n_skipped_short == 1
    assert st.sink_heads == [[1, 2]] and st.sink_rate == pytest.approx(2 / (2 * L * H))
    assert red.max_row_dev < 1e-5
    top = red.top_keys()
    row = top[(top[:, 1] == 1) & (top[:, 2] == 2)]
    assert (row[:, 3] == 0).all() and (row[:, 4] > 0.9).all()  # the sink head's top key is position 0


def test_choose_sample_takes_long_prompts_first() -> None:
    lengths = [10, 70, 5, 64, 30, 80, 12]
    got = choose_sample(lengths, n_max=5, n_tokens=64)
    assert {1, 3, 5} <= set(got) and len(got) == 5 and got == sorted(got)
    assert choose_sample(lengths, n_max=5, n_tokens=64) == got  # seeded
    assert np.array_equal(choose_sample(lengths, n_max=50, n_tokens=64), np.arange(7))


@pytest.mark.parametrize("chunk_rows", [None, 3])
@pytest.mark.parametrize("with_logits", [False, True])
def test_lens_reduction_equals_the_reference_kl(with_logits: bool, chunk_rows: int | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-pass logit lens (float64 KL rearranged as Σp log p − Σp z + logsumexp(z)·Σp) equals the numpy
    reference :meth:`LogitLensAccumulator.add` (log-softmax form) on the same decoded rows, point by point, also
    when the rows are taken a few at a time (``LENS_CHUNK_BYTES``: bounded memory for large vocabularies)."""
    from lmfacts.measures import beyond
    from lmfacts.measures.beyond import LensReduction
    from lmfacts.stats.logit_lens import LogitLensAccumulator

    if chunk_rows is not None:
        monkeypatch.setattr(beyond, "LENS_CHUNK_BYTES", chunk_rows * 8 * 300)  # 3 rows of the 300-token vocabulary

    L, d, V = 3, 16, 300
    g = torch.Generator().manual_seed(1)
    w = torch.randn(d, V, generator=g) * 2.0

    def decode(x: torch.Tensor) -> torch.Tensor:
        return x.float() @ w

    red = LensReduction(L, decode, n_per_prompt=4)
    ref = LogitLensAccumulator(L + 1)
    view = _view([12, 9, 7], 12, left=True, index=[3, 4, 5])
    red.start(view)
    r, c = red._rows
    base = torch.randn((*view.tokens.shape, d), generator=g)
    xs = [base + (L - p) * torch.randn(base.shape, generator=g) for p in range(L + 1)]  # nearer the end, nearer final
    for p in range(L):
        red.on(f"blocks.{p}.hook_resid_pre", xs[p])
    red.on(f"blocks.{L - 1}.hook_resid_post", xs[L])
    final = decode(xs[L][r, c])
    if with_logits:  # the model's own logits (slightly off the decode of the final point: KL there > 0)
        final = final + 0.3 * torch.randn(final.shape, generator=g)
        red.on("unembed.hook_out", _scatter(final, r, c, view.tokens.shape))
    red.end()
    for p in range(L + 1):
        ref.add(p, final.double().numpy(), decode(xs[p][r, c]).double().numpy())
    np.testing.assert_allclose(red.acc.kl_sum, ref.kl_sum, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(red.acc.kl_sq_sum, ref.kl_sq_sum, rtol=1e-10, atol=1e-12)
    assert (red.acc.agree == ref.agree).all() and (red.acc.n_tokens == ref.n_tokens).all()
    assert red.acc.kl_sum[0] > red.acc.kl_sum[L - 1] > 0  # the planted ordering, so the test can fail
    assert (red.acc.kl_sum[L] > 0) == with_logits


def _scatter(rows: torch.Tensor, r: torch.Tensor, c: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``[b, p, V]`` logits holding ``rows`` at the sampled (r, c) positions (zeros elsewhere)."""
    out = torch.zeros((*shape, rows.shape[-1]))
    out[r, c] = rows
    return out


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_lens_reduction_rejects_non_finite_lens_logits(bad: float) -> None:
    from lmfacts.measures.beyond import LensReduction

    L, d = 2, 8
    w = torch.randn(d, 50, generator=torch.Generator().manual_seed(0))

    def decode(x: torch.Tensor) -> torch.Tensor:
        out = x.float() @ w
        out[x[:, 0] == 7.0, 3] = bad  # the poisoned point's rows
        return out

    red = LensReduction(L, decode, n_per_prompt=2)
    view = _view([6, 6], 6, left=False, index=[0, 1])
    red.start(view)
    for p in range(L + 1):
        x = torch.randn((*view.tokens.shape, d))
        if p == 1:
            x[..., 0] = 7.0
        name = f"blocks.{p}.hook_resid_pre" if p < L else f"blocks.{L - 1}.hook_resid_post"
        red.on(name, x)
    with pytest.raises(ValueError, match="NaN/inf"):
        red.end()


def test_massive_activation_claims_apply_to_norms_after_sublayers(tmp_path: Any) -> None:
    """MA-1 reads block outputs, which stay a plain sum where a norm sits inside the residual branch (tiny
    Gemma 2: norms after the sublayers): it runs there (a random model: a finding that it has none), and skips
    on a post-LN encoder (tiny BERT re-normalises the stream) naming ``residual_sum``."""
    proc, _ = run_pytest("claims/test_ma_massive.py", "-k", "test_ma1", "--model", "tiny-gemma2", "--model", "tiny-bert",
                         "--max-prompts", "8", "--no-baselines", "-p", "no:cacheprovider", "-q", report_dir=tmp_path,
                         timeout=600)
    assert proc.returncode in (0, 1), (proc.stdout + proc.stderr)[-3000:]
    got = {r["model"]: r for r in load_report(tmp_path)["results"]}
    assert got["tiny-gemma2"]["outcome"] in ("passed", "failed"), got["tiny-gemma2"].get("reason")
    assert got["tiny-gemma2"]["measured"]["max_ratio"] > 0
    assert got["tiny-bert"]["outcome"] == "skipped" and "residual_sum" in got["tiny-bert"]["reason"], got["tiny-bert"]


def test_ll2_says_when_agreement_does_not_change_with_depth(tmp_path: Any) -> None:
    """tiny-gemma's lens agrees with the output at every point (agreement 1.0 throughout): LL-2 fails (it does not
    rise) and says that the series is flat, rather than only 'ρ = 0.000'."""
    proc, _ = run_pytest("claims/test_ll_logit_lens.py", "-k", "test_ll2", "--model", "tiny-gemma", "--max-prompts",
                         "8", "--no-baselines", "-p", "no:cacheprovider", "-q", report_dir=tmp_path, timeout=600)
    (r,) = [r for r in load_report(tmp_path)["results"] if r["claim"] == "LL-2"]
    assert r["measured"]["agreement"][1:] == [1.0] * (len(r["measured"]["agreement"]) - 1), r["measured"]
    assert r["outcome"] == "failed" and "does not change with depth" in r["reason"], (r["outcome"], r["reason"])


@pytest.mark.parametrize("causal", [True, False])
def test_key_importance_sums_equal_the_numpy_statistic(causal: bool) -> None:
    """The device-side sums of the sink reduction give :func:`lmfacts.stats.sinks.key_importance` (num / den,
    NaN where no counted query sees the key) on random patterns with padding."""
    from lmfacts.measures.beyond import key_importance_sums
    from lmfacts.stats.sinks import key_importance

    g = torch.Generator().manual_seed(3)
    b, h, p = 3, 4, 9
    attn = torch.softmax(torch.randn(b, h, p, p, generator=g, dtype=torch.float64), -1)
    mask = torch.ones(b, p, dtype=torch.bool)
    mask[1, 6:] = False
    mask[2, :2] = False
    num, den = key_importance_sums(attn, mask, causal=causal)
    with np.errstate(invalid="ignore", divide="ignore"):
        got = np.where(den.numpy() > 0, num.numpy() / np.where(den.numpy() > 0, den.numpy(), 1.0), np.nan)
    want = key_importance(attn.numpy(), mask.numpy(), causal=causal)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(want).any() == causal
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-12)


def test_in_place_logsumexp_is_torch_logsumexp_bit_for_bit() -> None:
    """The logit lens's buffered logsumexp (:func:`beyond._logsumexp_`) gives ``torch.logsumexp``'s bits, also on
    rows with a +inf, a −inf, only −inf, a NaN and huge values, so the buffer moves no reported number."""
    from lmfacts.measures.beyond import _logsumexp_

    g = torch.Generator().manual_seed(3)
    z = (torch.randn(9, 4099, generator=g, dtype=torch.float64) * 7.0)
    z[1, 5], z[2, 7], z[3, :] = math.inf, -math.inf, -math.inf
    z[4, 11], z[5] = math.nan, z[5] * 1e3
    ref = torch.logsumexp(z, dim=-1)
    got = _logsumexp_(z.clone())
    assert torch.equal(ref.isnan(), got.isnan())
    keep = ~ref.isnan()
    assert torch.equal(ref[keep], got[keep])
