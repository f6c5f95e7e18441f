"""``--junitxml``: each claim test carries its claim id, model, headline values and outcome as properties,
the same numbers report.json and report.csv hold (one run of two claims on tiny-gpt2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd

from tests.helpers import load_report, only_run_dir, run_pytest


def test_junit_properties_match_the_report(tmp_path):
    junit = tmp_path / "junit.xml"
    proc, _ = run_pytest("claims/", "--model", "tiny-gpt2", "-k", "RN-1 and not RN-1p or BF-4", "-q",
                         f"--junitxml={junit}", report_dir=tmp_path / "reports", timeout=600)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        cases[dict(props)["claim_id"]] = props
    assert set(cases) == {"RN-1", "BF-4"}, cases
    report = load_report(tmp_path / "reports")
    by_claim = {r["claim"]: r for r in report["results"]}
    for claim, props in cases.items():
        d = dict(props)
        r = by_claim[claim]
        assert (d["model"], d["device"], d["dtype"], d["outcome"]) == ("tiny-gpt2", "cpu", "float32", r["outcome"])
    rn1 = by_claim["RN-1"]
    headline = [v for k, v in cases["RN-1"] if k == "headline"]
    rate, ci = rn1["measured"]["rate"], rn1["intervals"]["rate"]["ci"]
    assert headline == [f"rate={float(rate)!r} [{float(ci[0])!r}, {float(ci[1])!r}]"]
    # BF-4 measures nothing on tiny-gpt2's constant norm gains: no headline property, a skip outcome
    assert [k for k, _ in cases["BF-4"] if k == "headline"] == [] and dict(cases["BF-4"])["outcome"] == "skipped"
    df = pd.read_csv(only_run_dir(tmp_path / "reports") / "report.csv")
    row = df[(df.claim == "RN-1") & (df.quantity == "rate")].iloc[0]
    assert (row.value, row.ci_low, row.ci_high, row.outcome) == (rate, ci[0], ci[1], rn1["outcome"])
