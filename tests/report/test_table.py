"""The results table (lmfacts.report.table): headline quantities, matrix cells, lead sentences, report.csv
(read back with pandas) and the HTML / Markdown matrix built from it. Planted records: every expected
string below follows from the numbers planted in the record, not from a run."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lmfacts.report import assemble_report, render_run
from lmfacts.report.html import render_html
from lmfacts.report.markdown import render_markdown
from lmfacts.report.synthetic import write_synthetic_run
from lmfacts.report.table import (
    CSV_COLUMNS,
    cell_for,
    headline_quantities,
    junit_properties,
    lead_sentence,
    matrix,
    record_quantities,
    revision_of,
    table_rows,
)

RATE = {"value": 1.0587811, "ci": [1.0540820, 1.0632878], "band": [1.0, None], "level": 0.95,
        "n_resamples": 1000, "method": "percentile", "verdict": "passed"}


def _rec(**kw):
    base = {"claim": "RN-1", "title": "norm growth", "nodeid": "claims/t.py::test[RN-1-m-cpu]", "model": "m",
            "device": "cpu", "dtype": "float32", "processing": "compat", "outcome": "passed",
            "measured": {"rate": 1.0587811, "r2": 0.93, "norms": [1.0, 2.0]}, "headline": ["rate"],
            "intervals": {"rate": dict(RATE)}, "expected": {"rate_band": [1.0, None]}, "reason": None}
    base.update(kw)
    return base


def test_headline_takes_its_interval_by_name_underscore_or_value():
    by_name = headline_quantities(_rec())[0]
    assert (by_name.value, by_name.ci, by_name.band, by_name.interval) == (1.0587811, (1.054082, 1.0632878),
                                                                           (1.0, None), "rate")
    dotted = headline_quantities(_rec(headline=["attn_out.rate"], measured={"attn_out": {"rate": 1.08}},
                                      intervals={"attn_out_rate": {**RATE, "value": 1.08}}))[0]
    assert (dotted.name, dotted.value, dotted.interval) == ("attn_out.rate", 1.08, "attn_out_rate")
    by_value = headline_quantities(_rec(headline=["per_k.0.margin"], measured={"per_k": [{"margin": 4.86}]},
                                        intervals={"margin_k1": {**RATE, "value": 4.86}, "margin_k2": RATE}))[0]
    assert by_value.interval == "margin_k1"
    missing = headline_quantities(_rec(headline=["rate", "nope"]))
    assert missing[1].value is None and missing[1].ci is None
    # no headline declared: the interval verdicts stand in; with neither, nothing
    assert [q.name for q in headline_quantities(_rec(headline=[]))] == ["rate"]
    assert headline_quantities(_rec(headline=[], intervals={})) == []


def test_record_quantities_lists_each_quantity_once():
    qs = record_quantities(_rec(intervals={"rate": RATE, "r2_gap": {**RATE, "value": 0.5}}))
    assert [(q.name, q.kind) for q in qs] == [("rate", "headline"), ("r2_gap", "interval"), ("r2", "measured")]


def test_cells_mark_every_outcome():
    assert cell_for([_rec()]).text == "1.059 [1.054, 1.063] ✓"
    inc = cell_for([_rec(outcome="inconclusive", reason="inconclusive: rate straddles 1")])
    assert inc.text == "1.059 [1.054, 1.063] ?" and inc.notes == ["inconclusive: rate straddles 1"]
    known = cell_for([_rec(outcome="xfailed", reason="known finding: rate 1.06",
                           baseline={"verdict": "known finding"})])
    assert known.mark == "xfail (known)" and known.notes == ["known finding: rate 1.06"]
    skip = cell_for([_rec(outcome="skipped", measured={}, intervals={}, reason="premise causal_decoder …",
                          premises=[{"name": "causal_decoder", "holds": False, "evidence": "bidirectional"}])])
    assert skip.text == "– causal_decoder" and skip.notes == ["premise causal_decoder …"]
    err = cell_for([_rec(outcome="error", measured={}, intervals={}, reason="KeyError: 'x'")])
    assert err.text == "E" and err.notes == ["error: KeyError: 'x'"]
    # the hover: expectation with its CI level, the other headline values, the reason
    two = cell_for([_rec(headline=["rate", "r2"], outcome="failed", reason="r2 0.93 < 0.95")])
    assert two.tip == "failed · expected rate > 1 (95% bootstrap CI vs band) · also r2=0.93 · r2 0.93 < 0.95"
    # a failure whose headline sits inside its band failed on another check: the reason is footnoted
    assert two.text == "1.059 [1.054, 1.063] ✗" and two.notes == ["r2 0.93 < 0.95"]


def test_a_cell_of_several_devices_shows_each():
    cell = cell_for([_rec(), _rec(device="cuda", outcome="failed", measured={"rate": 0.99},
                              intervals={"rate": {**RATE, "value": 0.99, "ci": [0.98, 1.0]}})])
    assert cell.outcome == "failed" and cell.text == "1.059 [1.054, 1.063] ✓ · 0.99 [0.98, 1] ✗"
    assert cell.tip.splitlines()[1].startswith("failed on cuda · expected rate > 1")


def test_html_matrix_marks_inconclusive_and_known_findings():
    report = {"run": {"id": "r"}, "models": [], "results": [
        _rec(model="a", nodeid="t[a]", outcome="inconclusive", reason="inconclusive: CI straddles 1"),
        _rec(model="b", nodeid="t[b]", outcome="xfailed", reason="known finding: rate 1.06",
             baseline={"verdict": "known finding"})]}
    page = render_html(report)
    assert 'class="cell o-inconclusive"' in page and '<span class="mk">?</span></a><sup>1</sup>' in page
    assert '<span class="mk">xfail (known)</span></a><sup>2</sup>' in page
    assert "<li>inconclusive: CI straddles 1</li><li>known finding: rate 1.06</li>" in page


def test_lead_sentences():
    assert lead_sentence(_rec()) == "Measured rate = 1.059 (95% CI [1.054, 1.063]) against expected > 1: passed."
    failed = _rec(headline=["rate", "r2"], outcome="failed", reason="r2 0.93 < 0.95", intervals={})
    assert lead_sentence(failed) == ("Measured rate = 1.059, r2 = 0.93 against expected rate_band=(1, ∞): "
                                     "failed — r2 0.93 < 0.95.")
    inc = _rec(outcome="inconclusive", reason="inconclusive: rate = 1.0588 straddles the band edge 1.06")
    assert lead_sentence(inc).endswith(": inconclusive (the CI straddles a band edge) — rate = 1.0588 straddles "
                                       "the band edge 1.06.")
    skip = _rec(outcome="skipped", measured={}, intervals={}, premises=[
        {"name": "causal_decoder", "statement": "a causal decoder", "holds": False, "evidence": "leak 0.4"}])
    assert lead_sentence(skip) == "Not applicable: premise causal_decoder (a causal decoder) does not hold — leak 0.4."
    err = _rec(outcome="error", error={"type": "NonFiniteMeasurement", "message": "rate is nan"})
    assert lead_sentence(err) == "Could not be judged: NonFiniteMeasurement: rate is nan."


def test_revision_from_record_checkpoint_model_or_option():
    report = {"models": [{"name": "m", "device": "cpu", "revision": "abc123"}],
              "run": {"options": {"revision": ["step1000"]}}}
    assert revision_of(_rec(revision="r0"), report) == "r0"
    assert revision_of(_rec(checkpoint={"family": "pythia", "step": 1, "revision": "step1"}), report) == "step1"
    assert revision_of(_rec(), report) == "abc123"
    assert revision_of(_rec(model="other"), report) == "step1000"
    assert revision_of(_rec(model="other"), {"run": {"options": {"revision": ["a", "b"]}}}) == ""


def test_junit_properties_carry_full_precision():
    props = junit_properties(_rec())
    assert props == [("claim_id", "RN-1"), ("model", "m"), ("device", "cpu"), ("dtype", "float32"),
                     ("outcome", "passed"), ("headline", "rate=1.0587811 [1.054082, 1.0632878]")]
    assert ("headline", "rate=1.0587811 [1.054082, 1.0632878]") not in junit_properties(
        _rec(measured={}, intervals={}))


def test_report_csv_reads_back_with_pandas(tmp_path):
    run_dir = write_synthetic_run(tmp_path / "20250101T000000Z-abc1234")
    store_rec = _rec(model="gpt2", claim="RN-9", nodeid="t::weird", headline=["rate"],
                     reason='a reason, with "quotes",\nnewlines and ✓ ünïcödé', outcome="failed")
    from lmfacts.report.store import RunStore

    RunStore(run_dir).append_result(store_rec)
    path = render_run(run_dir)["csv"]
    df = pd.read_csv(path)
    assert tuple(df.columns) == CSV_COLUMNS
    for col in ("value", "ci_low", "ci_high", "ci_level", "expected_lo", "expected_hi"):
        assert df[col].dtype == "float64", col
    key = ["claim", "model", "device", "revision", "dtype", "quantity"]
    assert not df.duplicated(key).any()
    assert not df[[k for k in key if k != "revision"]].isna().any().any()
    # no revision is an empty cell (NaN), not a revision named "-"; dropna=False groups keep every row
    assert df.revision.isna().all() and "(no model)" in set(df.model)
    assert df.groupby(key, dropna=False).ngroups == len(df)
    rate = df[(df.claim == "RN-1") & (df.model == "gpt2") & (df.quantity == "rate")].iloc[0]
    assert (rate.kind, rate.value, rate.ci_low, rate.ci_high, rate.ci_level) == ("headline", 1.21, 1.2, 1.22, 0.95)
    assert (rate.expected, rate.expected_lo, rate.expected_hi, rate.outcome) == ("(1.02, 1.6)", 1.02, 1.6, "passed")
    assert rate.test_id == "claims/test_rn.py::test_rn1[gpt2]"
    skipped = df[(df.claim == "RN-2") & (df.model == "pythia-160m")]
    assert list(skipped.quantity) == ["ratio"] and math.isnan(skipped.value.iloc[0])
    assert skipped.outcome.iloc[0] == "skipped"
    weird = df[df.test_id == "t::weird"]
    assert weird.reason.iloc[0] == 'a reason, with "quotes", newlines and ✓ ünïcödé'  # one line, as is
    # a tidy table: pivot to claim × model of the headline values
    wide = df[df.kind == "headline"].pivot_table(index=["claim", "quantity"], columns="model", values="value")
    assert wide.loc[("RS-1", "kurtosis"), "pythia-160m"] == pytest.approx(6.3)
    # every result has at least one row, and the rows follow the results
    report = assemble_report(run_dir)
    assert set(df.test_id) == {r["nodeid"] for r in report["results"]}
    assert len(df) == len(table_rows(report))


def test_matrix_rows_and_renderers_agree(tmp_path):
    report = assemble_report(write_synthetic_run(tmp_path / "20250101T000000Z-abc1234"))
    models, rows = matrix(report)
    rn1 = next(r for r in rows if r.claim == "RN-1")
    assert (rn1.quantity, rn1.expected, rn1.cells["gpt2"].text) == ("rate", "(1.02, 1.6)", "1.21 [1.2, 1.22] ✓")
    page = render_html(report)
    assert ('<span class="val">1.21</span> <span class="ci">[1.2, 1.22]</span> <span class="mk">✓</span>'
            in page)
    assert 'title="passed · expected rate (1.02, 1.6) (95% bootstrap CI vs band)' in page
    # a skip's card leads with its premise and evidence, and the matrix links to it
    assert 'id="rec-pythia-160m-rn-2"' in page and "Not applicable: premise bos_prepended" in page
    assert "Measured rate = 1.21 (95% CI [1.2, 1.22]) against expected (1.02, 1.6): passed." in page
    md = render_markdown(report)
    assert "| claim | title | headline | expected | gpt2 | pythia-160m | (no model) |" in md


def test_markdown_footnotes_expectations_that_differ_by_model(tmp_path):
    report = {"run": {"id": "r"}, "models": [], "results": [
        _rec(model="a", nodeid="t[a]"),
        _rec(model="b", nodeid="t[b]", intervals={"rate": {**RATE, "band": [1.02, None]}}),
    ]}
    md = render_markdown(report)
    row = next(line for line in md.splitlines() if line.startswith("| **RN-1**"))
    assert "varies by model" in row and "1.059 [1.054, 1.063] ✓[1]" in row and "✓[2]" in row
    assert "1. RN-1 on a: expected &gt; 1" in md and "2. RN-1 on b: expected &gt; 1.02" in md


def test_header_says_how_many_prompts_were_probed():
    from lmfacts.report.markdown import _header_lines

    corpus = {"sha256": "9f2c" + "0" * 60, "n_prompts": 227}
    full = " ".join(_header_lines({"run": {"corpus": {**corpus, "n_probe_prompts": 227}}}))
    subset = " ".join(_header_lines({"run": {"corpus": {**corpus, "n_probe_prompts": 16}}}))
    assert "227 prompts" in full and "probed" not in full
    assert "227 prompts (16 probed: --max-prompts)" in subset
