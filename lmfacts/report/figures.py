"""Draw FIGURE specs (generic plot descriptions carried by result records) as embedded PNGs.

A FIGURE is ``{"id", "title", "xlabel", "ylabel", "logx", "logy", "series": [{"label", "x", "y",
"style": "line"|"dashed"|"dotted"|"points"|"band", "y2"}], "vspans": [{"lo", "hi", "label"}]}``.
``null`` values (NaN in the JSON convention) are drawn as gaps; ``"inf"`` strings become inf.
Text is drawn literally (no mathtext), so ``$`` in a label cannot break a figure.
matplotlib is imported lazily, so importing the report package stays cheap.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

FIGSIZE = (5.4, 3.3)
DPI = 110
PALETTE = ("#1f5fa8", "#d1495b", "#2a9d8f", "#e9a23b", "#6a4c93", "#52606d", "#8ab17d", "#c2185b")


def _num(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _xs(values: list[Any]) -> tuple[list[float], list[str] | None]:
    """Numeric x values, or positions plus tick labels when x is categorical text."""
    if any(isinstance(v, str) and math.isnan(_num(v)) for v in values):
        return [float(i) for i in range(len(values))], [str(v) for v in values]
    return [_num(v) for v in values], None


def _label(text: Any) -> str | None:
    if text in (None, ""):
        return None
    s = str(text)
    return " " + s if s.startswith("_") else s  # matplotlib hides labels starting with "_"


def figure_png(spec: dict[str, Any]) -> bytes:
    """PNG bytes of one FIGURE spec; raises ValueError on a malformed spec."""
    from matplotlib.figure import Figure

    if not isinstance(spec, dict):
        raise ValueError("figure spec must be an object")
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    txt = {"parse_math": False}
    ticklabels: list[str] | None = None
    has_label = False
    for i, series in enumerate(spec.get("series") or []):
        if not isinstance(series, dict):
            raise ValueError(f"series {i} must be an object")
        y = [_num(v) for v in series.get("y") or []]
        x_raw = series.get("x")
        if x_raw is None:
            x = [float(k) for k in range(len(y))]
        else:
            x, cats = _xs(list(x_raw))
            ticklabels = cats or ticklabels
        if len(x) != len(y):
            raise ValueError(f"series {i}: len(x)={len(x)} != len(y)={len(y)}")
        color = series.get("color") or PALETTE[i % len(PALETTE)]
        label = _label(series.get("label"))
        has_label = has_label or label is not None
        style = series.get("style") or "line"
        if style == "band":
            y2 = [_num(v) for v in series.get("y2") or []]
            if len(y2) != len(y):
                raise ValueError(f"series {i}: band needs y2 of the same length as y")
            ax.fill_between(x, y, y2, color=color, alpha=0.22, linewidth=0, label=label)
        elif style == "points":
            ax.plot(x, y, linestyle="none", marker="o", markersize=3.5, color=color, label=label)
        elif style == "dashed":
            ax.plot(x, y, linestyle="--", linewidth=1.5, color=color, label=label)
        elif style == "dotted":
            ax.plot(x, y, linestyle=":", linewidth=1.6, color=color, label=label)
        elif style == "line":
            ax.plot(x, y, linestyle="-", linewidth=1.8, color=color, label=label)
        else:
            raise ValueError(f"series {i}: unknown style {style!r}")
    for j, span in enumerate(spec.get("vspans") or []):
        lo, hi = _num(span.get("lo")), _num(span.get("hi"))
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"vspan {j} needs numeric lo and hi")
        label = _label(span.get("label"))
        has_label = has_label or label is not None
        ax.axvspan(lo, hi, color="#9aa5b1", alpha=0.18, linewidth=0, label=label)
    if spec.get("logx"):
        ax.set_xscale("log")
    if spec.get("logy"):
        ax.set_yscale("log")
    if ticklabels is not None:
        step = max(1, len(ticklabels) // 12)
        ax.set_xticks(range(0, len(ticklabels), step), ticklabels[::step], rotation=45, ha="right", **txt)
    ax.set_title(str(spec.get("title") or spec.get("id") or ""), fontsize=10, **txt)
    ax.set_xlabel(str(spec.get("xlabel") or ""), fontsize=9, **txt)
    ax.set_ylabel(str(spec.get("ylabel") or ""), fontsize=9, **txt)
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if has_label:
        legend = ax.legend(fontsize=7.5, frameon=False)
        for text in legend.get_texts():
            text.set_parse_math(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def figure_data_uri(spec: dict[str, Any]) -> str:
    """``data:image/png;base64,...`` URI of one FIGURE spec."""
    return "data:image/png;base64," + base64.b64encode(figure_png(spec)).decode("ascii")
