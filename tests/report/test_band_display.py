"""An expected band with an open side reads as an interval with ∞ in the report's tables, never as ``null``.

``record["expected"]`` stores a band as JSON ``[lo, hi]`` with ``null`` for an unbounded side; report.md's
matrix and cards and report.html's cards showed it raw (``prompt_rate_band=[1, null]``) beside the
matrix's own ``> 1`` for the same kind of band.
"""

from __future__ import annotations

from lmfacts.report.fmt import compact


def test_open_band_sides_read_as_infinity() -> None:
    expected = {"prompt_rate_band": [1.0, None], "window": [0, 3], "low_band": [None, 0.5], "band": [0.97, 1.03]}
    text = compact(expected, lists=False)
    assert text == "prompt_rate_band=(1, ∞), window=[0, 3], low_band=(−∞, 0.5), band=(0.97, 1.03)", text
    assert "null" not in compact({"rate_band": [1.0, None]}) and "null" not in compact({"x": {"a_band": [None, 2]}})


def test_lists_that_are_not_bands_are_unchanged() -> None:
    assert compact({"norms": [1.0, None]}) == "norms=[1, null]"
    assert compact({"bandwidth": [1, 2]}) == "bandwidth=[1, 2]"


def test_a_closed_interval_band_reads_with_its_edges_included() -> None:
    """LL-1 / LL-2 judge ρ's CI against a closed band (ρ ≥ 0.8 accepts 0.8): the matrix, the csv's expected column
    and the interval table say ``≥ 0.8``; an open band keeps ``> 1``."""
    from lmfacts.report.outcomes import interval_text
    from lmfacts.report.table import expected_text, record_quantities

    closed = {"value": 0.96, "ci": [0.93, 0.99], "band": [0.8, None], "level": 0.95, "n_resamples": 2000,
              "method": "percentile", "verdict": "passed", "closed": True}
    opened = {**closed, "band": [1.0, None], "closed": False}
    record = {"claim": "LL-2", "headline": ["agreement_spearman"], "measured": {"agreement_spearman": 0.96},
              "intervals": {"agreement_spearman": closed, "rate": opened}, "outcome": "passed"}
    qs = {q.name: q for q in record_quantities(record)}
    assert expected_text(record, qs["agreement_spearman"]) == "≥ 0.8"
    assert expected_text(record, qs["rate"]) == "> 1"
    assert interval_text("agreement_spearman", closed).endswith("vs ≥ 0.8: passed")
