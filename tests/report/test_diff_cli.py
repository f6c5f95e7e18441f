"""diff_runs / format_diff and the ``python -m lmfacts report`` CLI."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lmfacts.__main__ import main
from lmfacts.report import RunStore, assemble_report, diff_runs, format_diff
from lmfacts.report.diff import relative_change, scalar_leaves
from lmfacts.report.synthetic import records, run_info, write_synthetic_run

REPO = Path(__file__).resolve().parents[2]


def _write_run(run_dir: Path, recs: list[dict]) -> Path:
    store = RunStore(run_dir)
    store.write_run_info(run_info(run_dir.name))
    for rec in recs:
        store.append_result(rec)
    return run_dir


def _changed_records() -> list[dict]:
    recs = copy.deepcopy(records())
    for rec in recs:
        if rec["nodeid"] == "claims/test_rs.py::test_rs1[gpt2]" and rec["outcome"] == "passed":
            rec["outcome"] = "failed"
            rec["reason"] = "kurtosis 2.9 < 10"
        if rec["nodeid"] == "claims/test_rn.py::test_rn2[gpt2]":
            rec["measured"] = {"ratio": 31.4159 * 1.5}
        if rec["nodeid"] == "claims/test_rn.py::test_rn4[gpt2]":
            rec["measured"] = {"min_slack": 0.00125, "n_checked": 4096}  # +4%: below rel_tol
    return recs


@pytest.fixture()
def runs(tmp_path):
    a = write_synthetic_run(tmp_path / "reports" / "20250101T000000Z-aaaaaaa")
    b = _write_run(tmp_path / "reports" / "20250102T000000Z-bbbbbbb", _changed_records())
    return a, b


def test_diff_detects_outcome_change_and_moved_value(runs):
    a, b = runs
    diff = diff_runs(assemble_report(a), assemble_report(b), rel_tol=0.1)
    assert [(c.claim, c.model, c.before, c.after) for c in diff.regressions] == [("RS-1", "gpt2", "passed", "failed")]
    moved = {(v.claim, v.path) for v in diff.value_changes}
    assert moved == {("RN-2", "ratio")}
    assert diff.value_changes[0].rel_change == pytest.approx(0.5)
    text = format_diff(diff)
    assert "REGRESSIONS (1)" in text and "RS-1 [gpt2] passed -> failed" in text
    assert "RN-2 [gpt2] ratio: 31.42 -> 47.12 (+50.0%)" in text


def test_diff_identical_runs_is_empty(runs):
    a, _ = runs
    diff = diff_runs(assemble_report(a), assemble_report(a))
    assert not diff.outcome_changes and not diff.value_changes
    assert "no changes" in format_diff(diff)


def test_diff_added_removed_and_non_regressions(runs):
    a, _ = runs
    ra = assemble_report(a)
    rb = copy.deepcopy(ra)
    rb["results"] = [r for r in rb["results"] if r["claim"] != "BF-3"]  # removed (was failed)
    rb["results"].append({"claim": "RS-2", "nodeid": "new", "model": "gpt2", "outcome": "failed"})
    for r in rb["results"]:
        if r["claim"] == "RN-4" and r["model"] == "pythia-160m":
            r["outcome"] = "passed"  # error -> passed is not a regression
    diff = diff_runs(ra, rb)
    assert not diff.regressions
    assert [c.claim for c in diff.added] == ["RS-2"] and [c.claim for c in diff.removed] == ["BF-3"]


def test_scalar_leaves_skip_long_lists():
    leaves = dict(scalar_leaves({"a": 1, "b": {"c": [1, 2]}, "d": [1, 2, 3, 4], "e": "x"}))
    assert leaves == {"a": 1, "b.c[0]": 1, "b.c[1]": 2, "e": "x"}


def test_relative_change_edge_cases():
    assert relative_change(0.0, 0.0) == 0.0
    assert math.isinf(relative_change(0.0, 1e-9))
    assert math.isinf(relative_change(1.0, None))
    assert relative_change(None, None) == 0.0
    assert relative_change(-2.0, -1.0) == pytest.approx(0.5)


def test_cli_diff_exit_codes(runs, capsys):
    a, b = runs
    assert main(["report", "diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "RS-1" in out and "REGRESSIONS" in out
    assert main(["report", "diff", str(b), str(a)]) == 0  # failed -> passed is an improvement
    assert main(["report", "diff", str(a), str(a), "--rel-tol", "0.2"]) == 0


def test_cli_diff_accepts_report_dir_and_report_json(runs, capsys):
    a, b = runs
    from lmfacts.report import render_run

    render_run(a)
    # a report dir means its latest run (b); report.json of A works as well
    assert main(["report", "diff", str(a / "report.json"), str(a.parent)]) == 1
    assert "using latest run" in capsys.readouterr().err


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["report", "diff", str(tmp_path / "nope"), str(tmp_path)]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["report", "render", str(tmp_path / "nope")]) == 2
    assert main(["report", "render", str(tmp_path)]) == 2  # exists but holds no run
    assert main(["report", "latest", "--report-dir", str(tmp_path / "nope")]) == 2
    assert main(["report", "diff", str(tmp_path)]) == 2  # argparse: missing argument
    assert main(["report", "diff", str(tmp_path), str(tmp_path), "--rel-tol", "-1"]) == 2
    assert main([]) == 2
    assert main(["report", "--help"]) == 0


def test_cli_render_partial_run(tmp_path, capsys):
    run_dir = write_synthetic_run(tmp_path / "20250101T000000Z-nogit", truncate_last=True)
    with pytest.warns(RuntimeWarning):
        assert main(["report", "render", str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert {Path(p).name for p in printed} == {"report.json", "report.md", "report.html", "report.csv"}
    assert json.loads((run_dir / "report.json").read_text(encoding="utf-8"))["summary"]["n_results"] == 12


def test_cli_latest(runs, capsys):
    a, b = runs
    assert main(["report", "latest", "--report-dir", str(a.parent)]) == 0
    assert capsys.readouterr().out.strip() == str(b)
    assert main(["report", "latest", "--report-dir", str(a.parent), "--exclude", b.name]) == 0
    assert capsys.readouterr().out.strip() == str(a)
    empty = a.parent.parent / "empty"
    empty.mkdir()
    assert main(["report", "latest", "--report-dir", str(empty)]) == 1


def test_python_dash_m_entry_point(runs):
    a, b = runs
    proc = subprocess.run([sys.executable, "-m", "lmfacts", "report", "diff", str(a), str(b)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "RS-1 [gpt2] passed -> failed" in proc.stdout


def test_cli_diff_of_a_file_that_is_not_a_report_is_a_usage_error_not_a_regression(runs, tmp_path, capsys):
    """Exit 1 means "a claim regressed" to CI: a wrong file must exit 2 naming it, never 1 with a traceback."""
    a, _ = runs
    bad = {"prompts.txt": b"one prompt\n", "latin1.json": "caf\xe9".encode("latin-1"), "other.json": b'{"a": 1}',
           "list.json": b"[1, 2]"}
    for name, blob in bad.items():
        (tmp_path / name).write_bytes(blob)
        assert main(["report", "diff", str(a), str(tmp_path / name)]) == 2, name
        err = capsys.readouterr().err
        assert f"{tmp_path / name}: not an lmfacts report.json" in err and "Traceback" not in err
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / "report.json").write_text("{truncated", encoding="utf-8")
    assert main(["report", "diff", str(a), str(broken)]) == 2
    assert "broken-run/report.json: not an lmfacts report.json" in capsys.readouterr().err
