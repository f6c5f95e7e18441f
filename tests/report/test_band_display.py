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
