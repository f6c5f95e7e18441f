"""``scripts/gpu_check.sh``: the comparison logic on planted records, and the CPU dry mode end to end."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from lmfacts.baselines import load_file
from tests.helpers import REPO


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


gc = _module()


def _record(claim: str, outcome: str, raw: str | None = None, **measured: float) -> dict:
    rec = {"claim": claim, "outcome": outcome, "headline": list(measured), "measured": measured}
    if raw is not None:
        rec["baseline"] = {"raw_outcome": raw, "status": "compared"}
    return rec


def test_claim_rows_undo_the_baseline_guard() -> None:
    rows = gc.claim_rows([_record("RN-1", "passed", rate=1.05), _record("RS-1", "xfailed", raw="failed", kurt=4.6),
                          _record("BF-1", "xpassed"), _record("RN-2", "skipped")])
    assert {c: r["verdict"] for c, r in rows.items()} == {"RN-1": "passed", "RS-1": "failed", "BF-1": "passed",
                                                          "RN-2": "skipped"}
    assert rows["RS-1"]["outcome"] == "xfailed" and rows["RN-1"]["headline"] == {"rate": 1.05}


def _run(model: str, dtype: str, records: list[dict]) -> object:
    run = gc.RunResult(model, dtype, "cuda", "unused")
    run.claims = gc.claim_rows(records)
    return run


def test_compare_against_a_recorded_baseline() -> None:
    baseline = load_file(REPO / "fixtures" / "baselines" / "smollm2-135m.toml")
    ref = gc.reference_rows(baseline)
    failed_claim = next(c for c, r in ref.items() if r["verdict"] == "failed")
    passed_claim = next(c for c, r in ref.items() if r["verdict"] == "passed")
    runs = [
        _run("smollm2-135m", "float32", [_record(passed_claim, "passed"), _record(failed_claim, "xfailed", raw="failed")]),
        # bfloat16: the known finding stopped failing, the passing claim errors
        _run("smollm2-135m", "bfloat16", [_record(passed_claim, "error"), _record(failed_claim, "passed")]),
    ]
    table = gc.compare(runs, {"smollm2-135m": ref}, ("float32", "bfloat16"))
    rows = {r["claim"]: r for r in table["smollm2-135m"]}
    assert rows[passed_claim]["reference"] == "baseline"
    assert (rows[passed_claim]["float32"], rows[passed_claim]["bfloat16"], rows[passed_claim]["differs"]) == (
        "passed", "error", ["bfloat16"])
    assert (rows[failed_claim]["float32"], rows[failed_claim]["differs"]) == ("failed", ["bfloat16"])
    # a recorded claim the runs did not produce (e.g. deselected) is listed but does not count as differing
    other = next(c for c in ref if c not in (passed_claim, failed_claim))
    assert rows[other]["float32"] is None and rows[other]["differs"] == []
    assert rows[passed_claim]["ref_headline"] == {h.key: [h.value, h.tol] for h in baseline.claims[passed_claim].headline}


def test_compare_without_baseline_uses_the_first_dtype() -> None:
    runs = [_run("tiny-gpt2", "float32", [_record("RN-1", "passed", rate=1.4), _record("RN-2", "failed")]),
            _run("tiny-gpt2", "bfloat16", [_record("RN-1", "passed", rate=1.39), _record("RN-2", "passed")])]
    rows = {r["claim"]: r for r in gc.compare(runs, {}, ("float32", "bfloat16"))["tiny-gpt2"]}
    assert rows["RN-1"]["reference"] == "float32" and rows["RN-1"]["differs"] == []
    assert rows["RN-2"]["differs"] == ["bfloat16"]
    md = gc.render_markdown({"device": "cuda", "started_utc": "t", "wall_s": 1, "budget_s": 480, "gpu": "H200",
                             "jobs": 2, "max_prompts": None, "dtypes": ["float32", "bfloat16"],
                             "prepare": {"wall_s": 1, "rc": 0}, "runs": [], "bench": {"status": "skipped", "why": "x"},
                             "comparison": {"tiny-gpt2": list(rows.values())}})
    assert "| RN-2 | failed | failed | passed | " in md and "**bfloat16**" in md and "1 claim(s) differ" in md


def test_dry_mode_runs_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", "--models", "tiny-gpt2",
                           "--suite-args", "-k 'RN-1 and not RN-1p'", "--out", str(out), "--budget-s", "600"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["device"], summary["max_prompts"], summary["dtypes"]) == ("cpu", 8, ["float32", "bfloat16"])
    runs = {r["dtype"]: r for r in summary["runs"]}
    for dtype in ("float32", "bfloat16"):
        r = runs[dtype]
        assert (r["model"], r["rc"], r["timed_out"], r["peak_gpu_mb"]) == ("tiny-gpt2", 0, False, None), r
        assert r["wall_s"] > 0 and r["peak_rss_mb"] > 50 and set(r["claims"]) == {"RN-1"}, r
        # the run's own replication report was written where the summary says
        assert list(Path(r["report_dir"]).glob("*/report.json")), r["report_dir"]
    row = summary["comparison"]["tiny-gpt2"][0]
    assert row["claim"] == "RN-1" and row["reference"] == "float32" and row["float32"] == runs["float32"]["claims"][
        "RN-1"]["verdict"]
    assert "rate" in row["float32_headline"] and "rate" in row["bfloat16_headline"]
    assert summary["bench"]["status"] == "skipped"
    md = (out / "summary.md").read_text()
    assert "# lmfacts GPU check (cpu)" in md and "| tiny-gpt2 | bfloat16 | 0 |" in md
    assert (out / "logs.txt").is_file()
