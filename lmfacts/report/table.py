"""The results table of a report: what each claim measured, against what, with what verdict.

One builder feeds every view of a run, so they cannot disagree:

* :func:`record_quantities` — the quantities of one record: its declared headline values first
  (``record["headline"]``, :func:`lmfacts.claims.headline_value`), each with the bootstrap CI and
  band of its interval verdict (``record["intervals"]``) when it has one, then the other interval
  verdicts, then every other scalar of ``record["measured"]``;
* :func:`table_rows` / :func:`csv_text` — ``report.csv``: one row per (claim, model, device,
  revision, dtype, quantity), ``pandas.read_csv`` loads it as is (:data:`CSV_COLUMNS`);
* :func:`matrix` — the claims × models matrix of ``report.html`` and ``report.md``: per claim its
  primary headline quantity, the expected band, and per model a :class:`Cell` (``1.059 [1.053,
  1.063] ✓``);
* :func:`lead_sentence` — the sentence a claim's card opens with (measured, expected, verdict; the
  premise and its evidence for a skip; what raised for an error);
* :func:`junit_properties` — the JUnit XML properties of a claim test (claim id, model, headline
  values, outcome).

An interval verdict belongs to a headline key when it bears the key's name (``"rate"``), the name
with dots as underscores (``"attn_out.rate"`` → ``"attn_out_rate"``), or, failing both, the
headline's exact value (the rule :mod:`lmfacts.baselines` derives tolerances by). Nothing here
imports torch.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from lmfacts.report.assemble import claim_order, model_order
from lmfacts.report.fmt import compact, flatten, fmt_list, fmt_number
from lmfacts.report.outcomes import band_text, cell_outcomes, known_finding, model_name, symbol

__all__ = [
    "CSV_COLUMNS",
    "Cell",
    "MatrixRow",
    "Quantity",
    "cell_for",
    "csv_text",
    "expected_text",
    "fmt_value",
    "headline_quantities",
    "headline_summary",
    "junit_properties",
    "lead_sentence",
    "matrix",
    "measured_text",
    "record_quantities",
    "revision_of",
    "skip_premise",
    "table_rows",
]

#: Columns of report.csv, in order. ``kind``: ``headline`` (a declared headline value), ``interval``
#: (an interval verdict that is no headline) or ``measured`` (any other scalar the claim measured);
#: ``value``: the number (empty when the quantity is not a finite number, e.g. not measured on a
#: skip); ``value_text``: the value as the report shows it; ``ci_low``/``ci_high``/``ci_level``: its
#: bootstrap CI; ``expected``: the band of its interval verdict (``> 1``, ``(0.97, 1.03)``; a closed one ``≥ 0.8``) or, for a
#: headline without one, the claim's expectation (``min_share=0.5``); ``expected_lo``/``expected_hi``:
#: the band's edges (empty = open side or no band); ``interval_verdict``: that interval's own verdict;
#: ``outcome``: the test's outcome (:data:`lmfacts.report.outcomes.OUTCOMES`); ``test_id``: its pytest id.
#: A model-free test's model is ``(no model)``; a device, dtype or quantity that was not recorded is
#: :data:`NO_VALUE`. ``revision`` is empty where the weights have none (a local, tiny or packaged model, a hub
#: model run without ``--revision``): pandas reads it as NaN, not as a revision named ``-`` (group with
#: ``dropna=False`` to keep those rows).
CSV_COLUMNS: tuple[str, ...] = (
    "claim", "title", "model", "device", "revision", "dtype", "processing", "quantity", "kind", "value",
    "value_text", "ci_low", "ci_high", "ci_level", "expected", "expected_lo", "expected_hi", "expected_kind",
    "interval_verdict", "outcome", "reason", "test_id",
)

#: What report.csv writes in a key column (device, dtype, quantity) that has no value: never empty, so
#: pandas reads it as text rather than NaN (``groupby`` drops NaN keys by default).
NO_VALUE = "-"

#: Most scalar leaves of ``measured`` one record contributes to report.csv (beyond its headline and
#: interval rows); the rest of a larger dict stays in report.json only.
MAX_MEASURED_ROWS = 200


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def fmt_value(x: Any) -> str:
    """A value for a table cell: numbers to 4 significant digits (``1.059``, ``0.0312``, ``13777``,
    ``3.02e-06``), ints under a million exact, booleans ``true``/``false``, lists ``[a, b, … (n items)]``,
    None ``–``; other values as text, cut to 40 characters."""
    if x is None:
        return "–"
    if isinstance(x, numbers.Real):  # booleans, ints and floats: fmt_number, but 1e3 ≤ |x| < 1e6 unrounded
        if not isinstance(x, bool) and math.isfinite(float(x)) and 1e3 <= abs(float(x)) < 1e6:
            return f"{float(x):.0f}"
        return fmt_number(x, 4)
    if isinstance(x, list):
        return fmt_list(x, 4, 3)
    if isinstance(x, dict):
        return compact(x, max_fields=3, lists=False)
    text = str(x)
    return text if len(text) <= 40 else text[:39] + "…"


@dataclass(frozen=True)
class Quantity:
    """One quantity of one record.

    ``value``: as measured (None: not measured, e.g. on a skip); ``ci``: ``(low, high)`` of its
    bootstrap interval at ``level`` (0.95) or None; ``band``: the band ``(low, high)`` (open, or ``closed``) of its
    interval verdict (None = open side) or None when it has none; ``interval``: that verdict's name in
    ``record["intervals"]``; ``verdict``: the verdict; ``kind``: ``headline``, ``interval`` or ``measured``.
    """

    name: str
    kind: str
    value: Any = None
    ci: tuple[float, float] | None = None
    level: float | None = None
    band: tuple[float | None, float | None] | None = None
    interval: str | None = None
    verdict: str | None = None
    method: str | None = None
    n_resamples: int | None = None
    closed: bool = False  # the band is closed (``≥ lo``, ``≤ hi``): see :func:`lmfacts.stats.verdict.interval_verdict`

    @property
    def band_text(self) -> str:
        """The band as text (``> 1``, ``≥ 0.8``, ``(0.97, 1.03)``); "" without one."""
        return band_text(list(self.band), self.closed) if self.band is not None else ""

    @property
    def number(self) -> float | None:
        """The value as a float when it is a real number (booleans as 1/0), else None."""
        if isinstance(self.value, bool):
            return float(self.value)
        return float(self.value) if _is_number(self.value) else None

    def text(self, *, level: bool = False) -> str:
        """``1.059 [1.053, 1.063]`` (``level``: ``1.059, 95% CI [1.053, 1.063]``); ``–`` when not measured."""
        shown = fmt_value(self.value)
        if self.ci is None:
            return shown
        ci = f"[{fmt_value(self.ci[0])}, {fmt_value(self.ci[1])}]"
        if level:
            pct = f"{100 * self.level:g}% " if self.level is not None else ""
            return f"{shown}, {pct}CI {ci}"
        return f"{shown} {ci}"


def _interval_quantity(name: str, kind: str, value: Any, iname: str | None, e: dict[str, Any] | None) -> Quantity:
    if e is None:
        return Quantity(name, kind, value)
    ci = e.get("ci")
    ci_pair = (float(ci[0]), float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(
        _is_number(c) for c in ci) else None
    band = e.get("band")
    band_pair = (tuple(None if b is None else float(b) for b in band)  # type: ignore[assignment]
                 if isinstance(band, (list, tuple)) and len(band) == 2 else None)
    level = e.get("level")
    n = e.get("n_resamples")
    return Quantity(name, kind, value if value is not None else e.get("value"), ci_pair,
                    float(level) if _is_number(level) else None, band_pair, iname,
                    str(e["verdict"]) if e.get("verdict") is not None else None,
                    str(e["method"]) if e.get("method") is not None else None,
                    int(n) if _is_number(n) else None, bool(e.get("closed")))


def _intervals(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    raw = record.get("intervals") or {}
    return {str(k): v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}


def _match_interval(key: str, value: Any, intervals: dict[str, dict[str, Any]], taken: set[str]) -> str | None:
    for name in (key, key.replace(".", "_")):
        if name in intervals and name not in taken:
            return name
    if _is_number(value):
        for name, e in sorted(intervals.items()):
            if name not in taken and _is_number(e.get("value")) and float(e["value"]) == float(value):
                return name
    return None


def headline_quantities(record: dict[str, Any]) -> list[Quantity]:
    """The record's declared headline values (``record["headline"]``), in declaration order.

    Each gets the interval verdict that belongs to it (module doc); a key the record did not
    measure (a skip, an error, a value the claim could not compute) gets ``value=None``. A record
    that declares no headline but holds interval verdicts gets those as its headline; with neither,
    ``[]``.
    """
    from lmfacts.claims import headline_value

    measured = record.get("measured") if isinstance(record.get("measured"), dict) else {}
    intervals = _intervals(record)
    keys = [str(k) for k in record.get("headline") or [] if isinstance(k, str) and k]
    if not keys:
        return [_interval_quantity(n, "headline", None, n, e) for n, e in intervals.items()]
    out: list[Quantity] = []
    taken: set[str] = set()
    for key in keys:
        try:
            value = headline_value(measured or {}, key)
        except KeyError:
            value = None
        iname = _match_interval(key, value, intervals, taken)
        if iname is not None:
            taken.add(iname)
        out.append(_interval_quantity(key, "headline", value, iname, intervals.get(iname) if iname else None))
    return out


def record_quantities(record: dict[str, Any], *, measured: bool = True) -> list[Quantity]:
    """Every quantity of ``record``: headline values, then the interval verdicts no headline took,
    then (``measured``) every other scalar leaf of ``record["measured"]`` (dotted keys; lists and
    values already listed left out; at most :data:`MAX_MEASURED_ROWS`)."""
    out = headline_quantities(record)
    names = {q.name for q in out}
    taken = {q.interval for q in out if q.interval}
    for name, e in _intervals(record).items():
        if name not in taken and name not in names:
            out.append(_interval_quantity(name, "interval", None, name, e))
            names.add(name)
    if not measured or not isinstance(record.get("measured"), dict):
        return out
    extra = [(k, v) for k, v in flatten(record["measured"])
             if k and k not in names and (v is None or isinstance(v, (bool, int, float, str)))]
    out += [Quantity(k, "measured", v) for k, v in extra[:MAX_MEASURED_ROWS]]
    return out


def expected_text(record: dict[str, Any], q: Quantity | None) -> str:
    """What was expected of ``q``: the band of its interval verdict (``> 1``, ``(0.97, 1.03)``), else
    the claim's whole expectation, compact (``min_share=0.5``), else ``""``."""
    if q is not None and q.band is not None:
        return q.band_text
    exp = record.get("expected")
    if exp is None or exp == {}:
        return ""
    return compact(exp, max_fields=4, lists=True, max_list=4)


def revision_of(record: dict[str, Any], report: dict[str, Any] | None = None) -> str:
    """The weights' revision of a record: its own ``revision``, else its checkpoint's
    (``record["checkpoint"]["revision"]``), else its model's in ``report["models"]``, else the run's
    ``--revision`` option when it names exactly one, else ``""``."""
    if record.get("revision"):
        return str(record["revision"])
    ckpt = record.get("checkpoint")
    if isinstance(ckpt, dict) and ckpt.get("revision"):
        return str(ckpt["revision"])
    report = report or {}
    for m in report.get("models") or []:
        if isinstance(m, dict) and m.get("name") == record.get("model") and m.get("revision"):
            if m.get("device") in (None, record.get("device")):
                return str(m["revision"])
    rev = ((report.get("run") or {}).get("options") or {}).get("revision")
    if isinstance(rev, list):
        rev = rev[0] if len(rev) == 1 else None
    return str(rev) if rev else ""


def _csv_number(x: Any) -> str:
    if x is None or not _is_number(x) and not isinstance(x, bool):
        return ""
    v = float(x)
    return "" if math.isnan(v) else repr(v)


def table_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """report.csv's rows (:data:`CSV_COLUMNS`, every value a string): per result in report order, one
    row per :func:`record_quantities` entry, or one row with ``quantity`` :data:`NO_VALUE` for a result
    that has none (an error before anything was measured, in a claim that declares no headline)."""
    rows: list[dict[str, str]] = []
    for r in report.get("results") or []:
        base = {
            "claim": str(r.get("claim") or ""), "title": str(r.get("title") or ""),
            "model": model_name(r), "device": str(r.get("device") or NO_VALUE),
            "revision": revision_of(r, report), "dtype": str(r.get("dtype") or NO_VALUE),
            "processing": str(r.get("processing") or ""), "expected_kind": str(r.get("expectation_kind") or ""),
            "outcome": str(r.get("outcome") or ""), "reason": " ".join(str(r.get("reason") or "").split()),
            "test_id": str(r.get("nodeid") or ""),
        }
        quantities = record_quantities(r)
        if not quantities:
            rows.append({c: base.get(c, "") for c in CSV_COLUMNS} | {"quantity": NO_VALUE})
            continue
        for q in quantities:
            row = dict(base)
            row.update({
                "quantity": q.name, "kind": q.kind, "value": _csv_number(q.number),
                "value_text": "" if q.value is None else fmt_value(q.value),
                "ci_low": _csv_number(q.ci[0]) if q.ci else "", "ci_high": _csv_number(q.ci[1]) if q.ci else "",
                "ci_level": _csv_number(q.level),
                "expected": expected_text(r, q) if q.kind == "headline" or q.band else "",
                "expected_lo": _csv_number(q.band[0]) if q.band else "",
                "expected_hi": _csv_number(q.band[1]) if q.band else "",
                "interval_verdict": q.verdict or "",
            })
            rows.append({c: row.get(c, "") for c in CSV_COLUMNS})
    return rows


def csv_text(report: dict[str, Any]) -> str:
    """report.csv: a header of :data:`CSV_COLUMNS`, then :func:`table_rows` (RFC 4180 quoting, ``\\n``)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(report))
    return buf.getvalue()


# -- the matrix -----------------------------------------------------------------------------------------
def skip_premise(record: dict[str, Any]) -> dict[str, Any] | None:
    """The premise that made ``record`` skip (the first in ``record["premises"]`` that does not hold), or None."""
    for p in record.get("premises") or []:
        if isinstance(p, dict) and p.get("holds") is False:
            return p
    return None


def _primary(record: dict[str, Any]) -> Quantity | None:
    qs = headline_quantities(record)
    return qs[0] if qs else None


#: The interval verdict that decided each outcome (a failed verdict fails the claim, an inconclusive one
#: makes it inconclusive; a known finding, xfailed, is a failure the baseline expected).
_DECIDING_VERDICT = {"failed": "failed", "xfailed": "failed", "inconclusive": "inconclusive"}


def deciding_quantity(record: dict[str, Any]) -> Quantity | None:
    """The quantity whose verdict decided ``record``'s outcome: for a failed (xfailed) or inconclusive record
    the first quantity (headline values first, then the other interval verdicts: :func:`record_quantities`)
    whose interval verdict is ``failed`` (``inconclusive``), e.g. RN-3's ``mlp_out_rate_diff`` (band ±0.05)
    when both rates passed ``> 1``; for a failure no interval verdict decided, the first numeric operand of
    the point check that failed (``record["failed_check"]``, :meth:`lmfacts.context.ClaimContext.check`: its
    expected is then the claim's whole expectation); otherwise the primary headline quantity. None for a
    record with no quantity."""
    want = _DECIDING_VERDICT.get(str(record.get("outcome") or ""))
    if want is not None:
        for q in record_quantities(record, measured=False):
            if q.verdict == want:
                return q
    check = record.get("failed_check")
    if want == "failed" and isinstance(check, dict) and isinstance(check.get("operands"), dict):
        # a point check (ctx.check) failed: its first numeric operand, unless it is the primary's own value
        primary = _primary(record)
        for name, value in check["operands"].items():
            if _is_number(value) or isinstance(value, bool):
                if primary is not None and primary.number is not None and float(value) == primary.number:
                    return primary
                return Quantity(str(name), "check", value)
    return _primary(record)


def headline_summary(record: dict[str, Any], *, level: bool = False, names: bool = True) -> str:
    """The headline values of a record on one line: ``rate=1.059 [1.053, 1.063]``, ``a=1, b=2``; values
    not measured are left out; ``""`` when none was measured (the caller may fall back to ``measured``)."""
    parts = []
    for q in headline_quantities(record):
        if q.value is None:
            continue
        parts.append(f"{q.name}={q.text(level=level)}" if names else q.text(level=level))
    return ", ".join(parts)


def measured_text(record: dict[str, Any], *, max_fields: int = 6, lists: bool = True) -> str:
    """What a per-model table shows as measured: the headline values (:func:`headline_summary`) of a claim
    that declares them (``""`` when none was measured, e.g. a skip), else the compact ``measured`` dict."""
    if record.get("headline") or _intervals(record):
        return headline_summary(record)
    return compact(record.get("measured"), max_fields=max_fields, lists=lists)


@dataclass
class Cell:
    """One claim × model cell: its records and what the matrix shows.

    ``value``: the primary headline value (``1.059``, ``""`` when not measured); ``ci``: its CI
    (``[1.053, 1.063]``, ``""`` without one);
    ``mark``: the outcome (``✓``; a skip ``– causal_decoder``, naming the premise that does not hold);
    ``expected``: what was expected of the primary quantity; ``notes``: reasons the renderers footnote
    (skips, errors — prefixed ``error:`` —, inconclusive verdicts, known findings); ``tip``: hover text.
    """

    records: list[dict[str, Any]]
    outcome: str
    value: str
    ci: str
    mark: str
    expected: str
    notes: list[str] = field(default_factory=list)
    tip: str = ""

    @property
    def text(self) -> str:
        """``value [ci] mark``; with several records ``mark`` already holds each record's ``value [ci] mark``."""
        return " ".join(t for t in (self.value, self.ci, self.mark) if t)


def _mark(record: dict[str, Any]) -> str:
    outcome = str(record.get("outcome") or "?")
    if outcome == "skipped":
        p = skip_premise(record)
        return f"{symbol(outcome)} {p.get('name')}" if p and p.get("name") else symbol(outcome)
    if outcome == "xfailed" and known_finding(record):
        return "xfail (known)"
    return symbol(outcome)


def _note(record: dict[str, Any]) -> str | None:
    outcome = record.get("outcome")
    reason = record.get("reason")
    if not reason or not (outcome in ("failed", "skipped", "error", "inconclusive") or known_finding(record)):
        return None
    return ("error: " if outcome == "error" else "") + " ".join(str(reason).split())


def cell_for(records: list[dict[str, Any]], quantity: str | None = None) -> Cell:
    """The :class:`Cell` of one claim × model from its records (one per device / dtype tested).

    Each record shows the quantity that decided its outcome (:func:`deciding_quantity`) and that quantity's
    band as expected; ``quantity``: the name the matrix row shows (default: the first record's), a record
    deciding on another quantity names it in its value (``mlp_out_rate_diff=0.081 [0.07, 0.09]``)."""
    worst = cell_outcomes(str(r.get("outcome") or "?") for r in records)[0][0]
    if quantity is None:
        first = deciding_quantity(records[0]) if records else None
        quantity = first.name if first is not None else ""
    texts, expecteds, notes, tips = [], [], [], []
    for r in records:
        q = deciding_quantity(r)
        value = q.text() if q is not None and q.value is not None else ""
        if value and q is not None and q.name != quantity:
            value = f"{q.name}={value}"
        texts.append(f"{value} {_mark(r)}".strip())
        exp = expected_text(r, q)
        if exp and exp not in expecteds:
            expecteds.append(exp)
        note = _note(r)
        if note and note not in notes:
            notes.append(note)
        tip = [f"{r.get('outcome')}" + (f" on {r.get('device')}" if len(records) > 1 else "")]
        if exp:
            tip.append(f"expected {q.name + ' ' if q is not None and q.band is not None else ''}{exp}"
                       + (f" ({100 * q.level:g}% bootstrap CI vs band)" if q is not None and q.band is not None
                          and q.level is not None else ""))
        others = [f"{o.name}={o.text()}" for o in headline_quantities(r)
                  if o.value is not None and (q is None or o.name != q.name)]
        if others:
            tip.append("also " + ", ".join(others))
        if r.get("reason"):
            tip.append(" ".join(str(r["reason"]).split()))
        tips.append(" · ".join(tip))
    value = ci = ""
    if len(records) == 1:
        q = deciding_quantity(records[0])
        if q is not None and q.value is not None:
            value = fmt_value(q.value) if q.name == quantity else f"{q.name}={fmt_value(q.value)}"
            ci = f"[{fmt_value(q.ci[0])}, {fmt_value(q.ci[1])}]" if q.ci else ""
        mark = _mark(records[0])
    else:
        mark = " · ".join(texts)
    return Cell(records, worst, value, ci, mark, "; ".join(expecteds), notes, "\n".join(tips))


@dataclass
class MatrixRow:
    """One claim of the matrix: its id, title, primary headline quantity, the expectation every model
    shares (``""`` when they differ: each cell then carries its own) and a cell per model (None: not run)."""

    claim: str
    title: str
    quantity: str
    expected: str
    cells: dict[str, Cell | None]

    @property
    def uniform(self) -> bool:
        """True when every cell with an expectation expects what :attr:`expected` says."""
        return all(c is None or not c.expected or c.expected == self.expected for c in self.cells.values())


def matrix(report: dict[str, Any]) -> tuple[list[str], list[MatrixRow]]:
    """``(models, rows)``: the models in report order and one :class:`MatrixRow` per claim, in catalogue order."""
    models = model_order(report)
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
    titles: dict[str, str] = {}
    quantity: dict[str, str] = {}
    deciding: dict[str, set[str]] = {}
    for r in report.get("results") or []:
        claim = str(r.get("claim") or "?")
        titles.setdefault(claim, str(r.get("title") or ""))
        by_cell.setdefault((claim, model_name(r)), []).append(r)
        if claim not in quantity:
            q = _primary(r)
            if q is not None:
                quantity[claim] = q.name
        d = deciding_quantity(r)
        if d is not None and d.value is not None:
            deciding.setdefault(claim, set()).add(d.name)
    for claim, names in deciding.items():  # every model decided on one quantity: the row shows it
        if len(names) == 1:
            quantity[claim] = next(iter(names))
    rows = []
    for claim in claim_order(report):
        cells = {m: cell_for(by_cell[(claim, m)], quantity.get(claim, "")) if (claim, m) in by_cell else None
                 for m in models}
        expecteds = {c.expected for c in cells.values() if c is not None and c.expected}
        rows.append(MatrixRow(claim, titles.get(claim, ""), quantity.get(claim, ""),
                              expecteds.pop() if len(expecteds) == 1 else "", cells))
    return models, rows


# -- sentences and properties ---------------------------------------------------------------------------
_VERDICT = {"passed": "passed", "failed": "failed", "inconclusive": "inconclusive (the CI straddles a band edge)",
            "xfailed": "xfail, an expected failure", "xpassed": "XPASS, an expected failure that now holds",
            "error": "error", "skipped": "skipped"}


def lead_sentence(record: dict[str, Any]) -> str:
    """The one sentence a claim's card opens with.

    Judged: ``Measured rate = 1.059 (95% CI [1.053, 1.063]) against expected > 1: passed.``, the
    reason appended to anything but a pass (``… : failed — kurtosis 4.64 < 6.``); a known finding says so.
    Skipped: ``Not applicable: premise causal_decoder (…) does not hold — <evidence>.`` (or the skip
    reason). Error: ``Could not be judged: <exception type>: <message>.``
    """
    outcome = str(record.get("outcome") or "?")
    reason = " ".join(str(record.get("reason") or "").split())
    if outcome == "skipped":
        p = skip_premise(record)
        if p is not None:
            statement = f" ({p.get('statement')})" if p.get("statement") else ""
            return f"Not applicable: premise {p.get('name')}{statement} does not hold — {p.get('evidence')}."
        return f"Skipped: {reason or 'no reason recorded'}."
    if outcome == "error":
        err = record.get("error") if isinstance(record.get("error"), dict) else None
        what = f"{err.get('type')}: {err.get('message')}" if err else reason or "no detail recorded"
        return f"Could not be judged: {what}."
    qs = [q for q in headline_quantities(record) if q.value is not None]
    decided = deciding_quantity(record)
    if decided is not None and decided.value is not None and decided.name not in {q.name for q in qs}:
        qs.append(decided)  # the check that failed is no headline (RN-3's rate difference): name it too
    parts = []
    for q in qs:
        inner = [f"{100 * q.level:g}% CI [{fmt_value(q.ci[0])}, {fmt_value(q.ci[1])}]" if q.ci and q.level
                 else f"CI [{fmt_value(q.ci[0])}, {fmt_value(q.ci[1])}]" if q.ci else ""]
        if q.band is not None and len(qs) > 1:
            inner.append(f"expected {q.band_text}")
        shown = "; ".join(i for i in inner if i)
        parts.append(f"{q.name} = {fmt_value(q.value)}" + (f" ({shown})" if shown else ""))
    if not parts and isinstance(record.get("measured"), dict) and record["measured"]:
        text = compact(record["measured"], max_fields=4, lists=False)
        if text:
            parts.append(text)
    measured = f"Measured {', '.join(parts)}" if parts else "Nothing measured"
    if len(qs) == 1 and qs[0].band is not None:
        expected = f" against expected {qs[0].band_text}"
    elif any(q.band is not None for q in qs):
        expected = ""
    else:
        exp = expected_text(record, None)
        expected = f" against expected {exp}" if exp else ""
    verdict = _VERDICT.get(outcome, outcome)
    if outcome == "inconclusive":
        reason = reason.removeprefix("inconclusive:").strip()
    if outcome == "xfailed" and known_finding(record):
        verdict = "xfail, a known finding of this model's baseline"
    tail = f" — {reason}" if reason and outcome != "passed" and not reason.startswith(verdict) else ""
    return f"{measured}{expected}: {verdict}{tail}".rstrip(".") + "."


def junit_properties(record: dict[str, Any]) -> list[tuple[str, str]]:
    """JUnit XML ``<property>`` pairs of a claim test: ``claim_id``, ``model``, ``device``, ``dtype``,
    ``outcome`` and one ``headline`` per measured headline value (``rate=1.059 [1.053, 1.063]``; full
    precision: ``rate=1.0587811260835902 [1.0540819986781629, 1.0632877685263082]``)."""
    props = [("claim_id", str(record.get("claim") or "")), ("model", str(record.get("model") or "")),
             ("device", str(record.get("device") or "")), ("dtype", str(record.get("dtype") or "")),
             ("outcome", str(record.get("outcome") or ""))]
    for q in headline_quantities(record):
        if q.value is None:
            continue
        value = repr(float(q.value)) if _is_number(q.value) else fmt_value(q.value)
        ci = f" [{q.ci[0]!r}, {q.ci[1]!r}]" if q.ci else ""
        props.append(("headline", f"{q.name}={value}{ci}"))
    return props
