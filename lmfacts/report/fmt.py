"""Compact text forms of measured / expected / tolerance values for tables."""

from __future__ import annotations

import math
from typing import Any


def fmt_number(value: float | int, sig: int = 4) -> str:
    """A number with ``sig`` significant digits (ints under 10**sig kept exact)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and abs(value) < 10**sig:
        return str(value)
    x = float(value)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.{sig}g}"


def fmt_scalar(value: Any, sig: int = 4, max_str: int = 40) -> str:
    """Text for one scalar value: numbers rounded, None as ``null``, strings cut to ``max_str``."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return fmt_number(value, sig)
    text = str(value)
    return text if len(text) <= max_str else text[: max_str - 1] + "…"


def is_scalar(value: Any) -> bool:
    """Whether ``value`` is a JSON scalar (None, bool, number or string)."""
    return value is None or isinstance(value, (bool, int, float, str))


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, leaf) pairs of nested dicts; lists are leaves."""
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out.extend(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [(prefix, value)]


def _is_band(key: str, value: Any) -> bool:
    """Whether ``key=value`` is an expected band: ``band`` / ``*_band`` holding ``[lo, hi]`` (None = open)."""
    last = key.rsplit(".", 1)[-1]
    return ((last == "band" or last.endswith("_band")) and isinstance(value, (list, tuple)) and len(value) == 2
            and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value))


def band_interval(band: list | tuple, sig: int = 4) -> str:
    """An open band ``[lo, hi]`` (None = unbounded side, as JSON stores it) as ``(lo, hi)`` with ∞ for an
    unbounded side: ``[1.0, None]`` → ``(1, ∞)``, never ``[1, null]``."""
    lo, hi = band
    return f"({'−∞' if lo is None else fmt_number(lo, sig)}, {'∞' if hi is None else fmt_number(hi, sig)})"


def fmt_list(values: list, sig: int = 4, max_items: int = 3) -> str:
    """``[a, b, c, … (n items)]`` for a list, showing at most ``max_items`` elements."""
    shown = ", ".join(fmt_scalar(v, sig) if is_scalar(v) else "…" for v in values[:max_items])
    if len(values) > max_items:
        return f"[{shown}, … ({len(values)} items)]"
    return f"[{shown}]"


def compact(
    value: Any,
    *,
    sig: int = 4,
    max_fields: int = 6,
    max_list: int = 3,
    lists: bool = True,
) -> str:
    """One-line summary of a measured/expected/tolerance value.

    Dicts are flattened to ``key=value`` pairs of their scalar leaves (at most ``max_fields``,
    then ``…``); an expected band (a ``*_band`` key) as ``(lo, hi)`` with ∞ for an open side (:func:`band_interval`).
    Lists are shown truncated to ``max_list`` items when ``lists`` is true and
    left out otherwise (for markdown, which must stay short). ``None`` gives ``""``.
    """
    if value is None:
        return ""
    if is_scalar(value):
        return fmt_scalar(value, sig)
    if isinstance(value, list):
        return fmt_list(value, sig, max_list) if lists else f"({len(value)} values)"
    parts: list[str] = []
    hidden = 0
    for key, leaf in flatten(value):
        if _is_band(key, leaf):
            text = band_interval(leaf, sig)
        elif isinstance(leaf, list):
            if not lists and len(leaf) > max_list:
                hidden += 1
                continue
            text = fmt_list(leaf, sig, max_list)
        elif isinstance(leaf, dict):  # empty dict
            continue
        else:
            text = fmt_scalar(leaf, sig)
        parts.append(f"{key}={text}")
    more = len(parts) - max_fields
    if more > 0:
        parts = parts[:max_fields] + [f"… (+{more})"]
    elif hidden and not parts:
        parts = [f"({hidden} lists)"]
    return ", ".join(parts)
