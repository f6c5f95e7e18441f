"""Planted-answer tests for lmfacts.stats.massive (MA-1 … MA-4)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmfacts.stats import DegenerateSample
from lmfacts.stats.massive import (
    LogAbsHistogram,
    MassiveAccumulator,
    bias_ablation_effect,
    massive_activations,
    position_classes,
)

FIRST, DELIM, OTHER = 0, 1, 2


def planted_stream(
    n_layers: int = 8,
    n_prompts: int = 12,
    p: int = 16,
    d: int = 64,
    *,
    emerge: int | None = 3,
    dim: int = 17,
    delim_pos: int = 5,
    delim_dim: int = 40,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian stream [L, n, p, d]; from layer ``emerge`` on, dim ``dim`` at position 0 is ~1e4
    (×10⁴ the unit scale) in every prompt, and dim ``delim_dim`` at the delimiter ``delim_pos`` is
    ~3e3 in the even prompts only. Returns (acts, classes [n, p])."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_layers, n_prompts, p, d))
    classes = np.full((n_prompts, p), OTHER)
    classes[:, 0] = FIRST
    classes[:, delim_pos] = DELIM
    if emerge is not None:
        x[emerge:, :, 0, dim] = 1e4 * (1 + 0.1 * np.abs(rng.standard_normal((n_layers - emerge, n_prompts))))
        x[emerge:, ::2, delim_pos, delim_dim] = -3e3
    return x, classes


def fill(acts: np.ndarray, classes: np.ndarray, batch: int, **kw: object) -> MassiveAccumulator:
    acc = MassiveAccumulator(acts.shape[0], **kw)  # type: ignore[arg-type]
    n = acts.shape[1]
    for start in range(0, n, batch):
        for layer in range(acts.shape[0]):
            acc.add(layer, acts[layer, start:start + batch], classes[start:start + batch])
    return acc


def test_planted_massive_activation_found_with_dim_position_and_layer() -> None:
    acts, classes = planted_stream()
    res = massive_activations(fill(acts, classes, 12))
    assert res.any_massive and res.emergence_layer == 3
    assert res.has_massive == [False] * 3 + [True] * 5
    assert res.dims == [17, 40]  # the delimiter dim is massive in half the prompts: share 0.5 >= min_share 0.5
    first = [s for s in res.sites if s["layer"] == 3 and s["class"] == "first"]
    assert len(first) == 1 and first[0]["dim"] == 17 and first[0]["positions"] == [0]
    assert first[0]["share"] == 1.0 and first[0]["n_prompts"] == 12
    assert first[0]["mean_value"] == pytest.approx(acts[3, :, 0, 17].mean())
    delim = [s for s in res.sites if s["layer"] == 3 and s["class"] == "delimiter"]
    assert len(delim) == 1 and delim[0]["dim"] == 40 and delim[0]["positions"] == [5]
    assert delim[0]["share"] == 0.5 and delim[0]["mean_value"] == pytest.approx(-3e3)
    assert res.class_counts == {"first": 12 * 5, "delimiter": 6 * 5}
    assert res.top1[3] == pytest.approx(np.abs(acts[3]).max())
    assert res.jump is not None and res.jump > 1e3
    assert res.rise_layers == 1 and res.plateau_ratio is not None and res.plateau_ratio < 1.3
    assert res.saturated_layers == []
    assert all(r < 100 for r in res.ratio[:3]) and all(r > 1e4 for r in res.ratio[3:])


def test_min_share_admits_the_delimiter_dim() -> None:
    acts, classes = planted_stream()
    strict = massive_activations(fill(acts, classes, 12), min_share=0.6)
    loose = massive_activations(fill(acts, classes, 12), min_share=0.5)
    assert strict.dims == [17] and loose.dims == [17, 40]


def test_no_plant_no_massive() -> None:
    acts, classes = planted_stream(emerge=None)
    res = massive_activations(fill(acts, classes, 5))
    assert not res.any_massive and res.emergence_layer is None and res.sites == []
    assert res.jump is None and res.rise_layers is None and res.dims == []


@settings(max_examples=15, deadline=None)
@given(n_layers=st.integers(2, 10), data=st.data(), seed=st.integers(0, 10_000))
def test_planted_property(n_layers: int, data: st.DataObject, seed: int) -> None:
    emerge = data.draw(st.integers(0, n_layers - 1))
    dim = data.draw(st.integers(0, 31))
    acts, classes = planted_stream(n_layers, 6, 8, 32, emerge=emerge, dim=dim, delim_pos=3,
                                   delim_dim=(dim + 1) % 32, seed=seed)
    res = massive_activations(fill(acts, classes, 4))
    assert res.emergence_layer == emerge and dim in res.dims
    assert all(s["positions"] == [0] for s in res.sites if s["class"] == "first")


def test_both_thresholds_matter() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 8, 32))
    cls = np.full((4, 8), OTHER)
    x[0, 0, 2, 3] = 150.0  # > 100 but < 1000 × median (~674): not massive
    assert not massive_activations(fill(x, cls, 4)).any_massive
    y = 0.01 * x
    y[0, 0, 2, 3] = 90.0  # > 1000 × median (~6.7) but < 100: not massive
    assert not massive_activations(fill(y, cls, 4)).any_massive
    y[0, 0, 2, 3] = 101.0
    res = massive_activations(fill(y, cls, 4))
    assert res.any_massive and res.sites[0]["dim"] == 3 and res.sites[0]["positions"] == [2]


def test_streaming_equals_one_shot() -> None:
    acts, classes = planted_stream()
    one = massive_activations(fill(acts, classes, 12)).to_dict()
    for batch in (1, 5, 7):
        assert massive_activations(fill(acts, classes, batch)).to_dict() == one
    a, b = MassiveAccumulator(8), MassiveAccumulator(8)
    for layer in range(8):
        a.add(layer, acts[layer, :7], classes[:7])
        b.add(layer, acts[layer, 7:], classes[7:], prompt_ids=np.arange(7, 12))
    a.merge(b)
    assert massive_activations(a).to_dict() == one


def test_shares_count_the_prompts_seen_not_their_ids() -> None:
    acts, classes = planted_stream(n_layers=3, emerge=1)
    acc = MassiveAccumulator(3)
    for layer in range(3):
        acc.add(layer, acts[layer], classes, prompt_ids=np.arange(12) * 7 + 100)  # corpus indices of a subset
    res = massive_activations(acc)
    assert res.n_prompts == 12 and {s["share"] for s in res.sites if s["class"] == "first"} == {1.0}


def test_device_reduced_candidates_equal_numpy_path() -> None:
    torch = pytest.importorskip("torch")
    acts, classes = planted_stream(n_layers=4, emerge=2)
    ref = massive_activations(fill(acts, classes, 4))
    acc = MassiveAccumulator(4)
    for start in range(0, 12, 4):
        for layer in range(4):
            x = torch.as_tensor(acts[layer, start:start + 4])  # what a probe hook holds
            c = torch.as_tensor(classes[start:start + 4])
            a = torch.where((c >= 0)[:, :, None], x.abs(), torch.tensor(-1.0, dtype=x.dtype))
            vals, idx = torch.topk(a.flatten(1), acc.k, dim=1)
            pos, dim = idx // x.shape[2], idx % x.shape[2]
            acc.add_topk(layer, vals.numpy(), x.flatten(1).gather(1, idx).numpy(), pos.numpy(), dim.numpy(),
                         c.gather(1, pos).numpy(), prompt_ids=np.arange(start, start + 4))
            bins = acc.hist.bin_index(x.abs()[c >= 0].numpy()).ravel()
            acc.hist.add_counts(layer, np.bincount(bins, minlength=acc.hist.n_bins + 2))
    assert massive_activations(acc).to_dict() == ref.to_dict()


def test_histogram_median_within_documented_bound() -> None:
    rng = np.random.default_rng(2)
    h = LogAbsHistogram(3)
    for layer, scale in enumerate((1e-3, 1.0, 50.0)):
        vals = np.abs(rng.standard_normal(10_001) * scale)
        for chunk in np.array_split(vals, 7):
            h.add(layer, chunk)
        exact = np.sort(vals)[(vals.size + 1) // 2 - 1]
        assert abs(h.median(layer) / exact - 1) <= h.relative_error_bound * (1 + 1e-9)
    assert h.relative_error_bound == pytest.approx(10**0.0025 - 1)
    coarse = LogAbsHistogram(1, width=0.5)
    vals = np.abs(rng.standard_normal(999))
    coarse.add(0, vals)
    exact = np.sort(vals)[499]
    assert abs(coarse.median(0) / exact - 1) <= coarse.relative_error_bound


def test_padding_is_ignored_and_positions_are_prompt_relative() -> None:
    acts, classes = planted_stream(n_layers=4, emerge=1)
    padded = np.concatenate([np.full((4, 12, 2, 64), 1e6), acts], axis=2)  # 2 left pads, huge
    pcls = np.concatenate([np.full((12, 2), -1), classes], axis=1)
    pos = np.broadcast_to(np.r_[-1, -1, np.arange(16)], (12, 18))
    acc = MassiveAccumulator(4)
    for layer in range(4):
        acc.add(layer, padded[layer], pcls, positions=pos)
    res = massive_activations(acc)
    ref = massive_activations(fill(acts, classes, 12))
    assert res.to_dict() == ref.to_dict()


def test_more_massive_entries_than_k_reported_as_saturated() -> None:
    acts, classes = planted_stream(n_layers=3, emerge=1)
    acts[2, 0, 1, :10] = 5e4  # ten massive entries in prompt 0 at layer 2, k = 8
    res = massive_activations(fill(acts, classes, 12, k=8))
    assert res.saturated_layers == [2]


def test_position_classes() -> None:
    ids = np.array([[0, 9, 13, 5, 13], [7, 7, 0, 9, 198]])
    valid = np.array([[True] * 5, [False, False, True, True, True]])
    first = np.array([[True] + [False] * 4, [False, False, True, False, False]])
    out = position_classes(ids, valid, first, delimiter_ids=[13, 198])
    assert out.tolist() == [[0, 2, 1, 2, 1], [-1, -1, 0, 2, 1]]


def test_bias_ablation_planted_ordering() -> None:
    rng = np.random.default_rng(3)
    clean = 3.0 + 0.3 * rng.standard_normal(40)
    mean = clean + 0.002 * rng.standard_normal(40)
    zero = clean + 0.5 + 0.05 * rng.standard_normal(40)
    res = bias_ablation_effect(clean, mean, zero)
    assert res.delta_zero == pytest.approx(0.5, abs=0.03)
    assert abs(res.delta_mean) < 0.002
    assert res.delta_zero_ci is not None and res.delta_zero_ci[0] > 0.4
    assert res.zero_minus_mean_ci is not None and res.zero_minus_mean_ci[0] > 0.4
    assert res.zero_over_mean > 100 and res.ppl_zero == pytest.approx(np.exp(res.zero))
    same = bias_ablation_effect(clean, clean, clean)
    assert same.delta_zero == 0 and same.zero_over_mean == float("inf")


def test_bias_ablation_token_weights_and_scalars() -> None:
    res = bias_ablation_effect([2.0, 4.0], [2.0, 4.0], [3.0, 4.0], weights=[3, 1])
    assert res.clean == pytest.approx(2.5) and res.zero == pytest.approx(3.25)
    one = bias_ablation_effect(9.79 / 4, 9.79 / 4, 10.21 / 4)
    assert one.delta_zero_ci is None and one.n_prompts == 1


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda: MassiveAccumulator(2).add(0, np.full((1, 2, 3), np.nan), np.zeros((1, 2), int)), ValueError, "NaN"),
    (lambda: MassiveAccumulator(2).add(0, np.ones((1, 2, 3)), np.zeros((1, 3), int)), ValueError, "classes"),
    (lambda: MassiveAccumulator(2).add(0, np.ones((1, 2, 3)), np.full((1, 2), 5)), ValueError, "codes"),
    (lambda: MassiveAccumulator(2).add(2, np.ones((1, 2, 3)), np.zeros((1, 2), int)), ValueError, "layer"),
    (lambda: massive_activations(MassiveAccumulator(2)), ValueError, "no activations"),
    (lambda: bias_ablation_effect([1.0, np.nan], [1.0, 1.0], [1.0, 1.0]), ValueError, "NaN"),
    (lambda: bias_ablation_effect([1.0, 2.0], [1.0], [1.0, 1.0]), ValueError, "paired"),
    (lambda: bias_ablation_effect([], [], []), DegenerateSample, "at least 1"),
])
def test_bad_input_raises_with_a_clear_message(call, exc, match) -> None:  # noqa: ANN001
    with pytest.raises(exc, match=match):
        call()


def test_all_zero_layer_is_degenerate() -> None:
    acc = MassiveAccumulator(1)
    acc.add(0, np.zeros((2, 3, 4)), np.zeros((2, 3), int))
    with pytest.raises(DegenerateSample, match="below"):
        massive_activations(acc)


def test_all_padding_batch_counts_nothing() -> None:
    acc = MassiveAccumulator(1)
    acc.add(0, np.ones((2, 3, 4)), np.full((2, 3), -1))
    with pytest.raises(ValueError, match="no activations"):
        massive_activations(acc)
