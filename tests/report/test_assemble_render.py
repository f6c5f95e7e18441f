"""assemble_report, markdown, HTML and terminal summary on the synthetic run."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from lmfacts.report import RunStore, assemble_report, render_run, terminal_summary_lines
from lmfacts.report.html import render_html
from lmfacts.report.markdown import render_markdown
from lmfacts.report.synthetic import records, write_synthetic_run


@pytest.fixture()
def run_dir(tmp_path):
    return write_synthetic_run(tmp_path / "20250101T000000Z-abc1234")


@pytest.fixture()
def report(run_dir):
    return assemble_report(run_dir)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The synthetic report's HTML, drawn once for the module (figures are the slow part)."""
    run_dir = write_synthetic_run(tmp_path_factory.mktemp("page") / "20250101T000000Z-abc1234")
    return render_html(assemble_report(run_dir))


def test_later_line_supersedes_earlier(report):
    rn1 = [r for r in report["results"] if r["nodeid"] == "claims/test_rn.py::test_rn1[gpt2]"]
    assert len(rn1) == 1 and rn1[0]["outcome"] == "passed"
    assert len(report["results"]) == len({r["nodeid"] for r in records()})


def test_summary_counts(report):
    counts = report["summary"]["counts"]
    assert counts == {"passed": 6, "failed": 2, "inconclusive": 0, "skipped": 1, "xfailed": 1, "xpassed": 1,
                      "error": 1}
    assert report["summary"]["by_model"]["pythia-160m"]["error"] == 1
    assert report["run"]["id"] == "20250101T000000Z-abc1234"


def test_results_in_catalogue_order(report):
    claims = [r["claim"] for r in report["results"]]
    assert claims.index("RN-8") < claims.index("BF-3") < claims.index("RS-1")


def test_missing_fields_get_defaults(tmp_path):
    store = RunStore(tmp_path)
    store.write_run_info({"run": {"id": "r"}, "models": []})
    store.append_result({"claim": "RN-1", "outcome": "passed", "nodeid": "t"})
    rec = assemble_report(tmp_path)["results"][0]
    assert rec["figures"] == [] and rec["witness"] is None and rec["measured"] is None


def test_markdown_matrix(report):
    md = render_markdown(report)
    row = next(line for line in md.splitlines() if line.startswith("| **RN-2**"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # claim, title, headline quantity, expected, then per model: headline value and outcome
    assert cells[2:] == ["ratio", "ratio_min=5", "31.42 ✓", "– bos_prepended[1]", ""]  # last: (no model)
    assert "1. tokenizer adds no BOS token (pythia-160m)" in md
    rn1 = [c.strip() for c in next(line for line in md.splitlines() if line.startswith("| **RN-1**")).split("|")]
    assert rn1[3:7] == ["rate", "(1.02, 1.6)", "1.21 [1.2, 1.22] ✓", "0.97 [0.96, 0.98] xfail"]
    rn4 = next(line for line in md.splitlines() if line.startswith("| **RN-4**"))
    assert "| E[2] |" in rn4  # an error is footnoted with what raised, like a skip with its reason
    assert "2. error: " in md
    assert "| 0.6012 XPASS |" in next(line for line in md.splitlines() if line.startswith("| **BF-7**"))
    # grouped by source post, long lists kept out, values rounded to 4 significant digits
    assert "### Residual norms grow exponentially (RN)" in md and "### Basic facts about LM internals (BF)" in md
    assert "13 items" not in md and "per_layer" not in md
    assert "ratio=31.42" in md
    assert "<script>" not in md


def test_html_escapes_everything(page):
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'alt="gpt2: kurtosis &lt;by layer&gt;"' in page and "<by layer>" not in page
    assert 'sat &amp; &quot;quoted&quot;' in page


def test_html_escapes_model_names_and_reasons(tmp_path):
    store = RunStore(tmp_path)
    evil = '<img src=x onerror="alert(1)">'
    store.write_run_info({"run": {"id": "r", "command": evil}, "models": [{"name": evil}]})
    store.append_result({"claim": "RN-1", "title": evil, "nodeid": "t", "model": evil, "outcome": "skipped",
                         "reason": evil, "statistic": evil, "measured": {"k": evil}})
    page = render_html(assemble_report(tmp_path))
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_html_embeds_every_figure(report, page):
    n_figs = sum(len(r["figures"]) for r in report["results"] if r["outcome"] != "skipped")
    assert n_figs == 6
    assert page.count('<img alt="') == n_figs
    assert page.count('src="data:image/png;base64,') == n_figs
    assert not re.search(r'(src|href)="(https?:)?//', page), "external asset referenced"


def test_bad_figure_spec_shows_placeholder(tmp_path):
    store = RunStore(tmp_path)
    store.append_result({"claim": "RN-1", "nodeid": "t", "outcome": "passed",
                         "figures": [{"title": "<broken>", "series": [{"x": [1, 2], "y": [1]}]}]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = render_html(assemble_report(tmp_path))
    assert "could not be drawn" in page and "&lt;broken&gt;" in page


def test_terminal_summary(report):
    lines = terminal_summary_lines(report)
    assert lines[0].startswith("lmfacts run 20250101T000000Z-abc1234: 6 passed, 2 failed")
    header = lines[1].split()
    assert header[:3] == ["claim", "gpt2", "pythia-160m"]
    rs1 = next(line for line in lines if line.startswith("RS-1"))
    assert rs1.split()[1:] == ["✓", "✗"]
    ascii_lines = terminal_summary_lines(report, ascii_only=True)
    assert all(line.isascii() for line in ascii_lines)


def test_render_run_writes_four_files(run_dir):
    paths = render_run(run_dir)
    assert set(paths) == {"json", "md", "html", "csv"}
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["summary"]["counts"]["passed"] == 6 and len(data["results"]) == 12
    assert paths["md"].read_text(encoding="utf-8").startswith("# lmfacts replication report")
    assert paths["html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_render_partial_run(tmp_path):
    run_dir = write_synthetic_run(tmp_path / "20250101T000000Z-nogit", truncate_last=True)
    with pytest.warns(RuntimeWarning, match="truncated"):
        paths = render_run(run_dir)
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["summary"]["n_results"] == 12


def test_render_without_run_json(tmp_path):
    RunStore(tmp_path).append_result({"claim": "RN-1", "nodeid": "t", "outcome": "passed", "model": "gpt2"})
    with pytest.warns(RuntimeWarning, match="run.json is missing"):
        paths = render_run(tmp_path)
    assert "gpt2" in paths["md"].read_text(encoding="utf-8")


def test_render_empty_dir_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        render_run(tmp_path)
