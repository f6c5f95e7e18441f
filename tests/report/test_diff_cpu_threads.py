"""The same inputs on the CPU with another number of torch threads give values that differ in their last
digits (torch splits a float sum across its threads): tiny-llama, --max-prompts 4, serial (2 threads) against
-n 2 (1 thread per worker) moved 38 measured values by ~1e-10 relative (RN-1's rate 1.447549444142281 ->
1.4475494442112389), bit for bit what a serial run under OMP_NUM_THREADS=1 gives. run.json records each model's
thread count (``models[].cpu_threads``) and ``report diff`` names a change, as it does a BOS convention change,
so moved last digits are not read as nondeterminism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lmfacts.report.diff import diff_runs, format_diff
from tests.helpers import REPO, only_run_dir, run_pytest


def _report(threads: int | None, rate: float) -> dict:
    model = {"name": "tiny-llama", "device": "cpu", "prepends_bos": True}
    if threads is not None:
        model["cpu_threads"] = threads
    rec = {"nodeid": "claims/x.py::t[RN-1-tiny-llama-cpu]", "claim": "RN-1", "model": "tiny-llama",
           "outcome": "passed", "measured": {"rate": rate}}
    return {"run": {"id": f"t{threads}"}, "models": [model], "results": [rec]}


def test_diff_names_a_change_of_cpu_threads() -> None:
    diff = diff_runs(_report(2, 1.447549444142281), _report(1, 1.4475494442112389), rel_tol=0.0)
    assert [(c.model, c.before, c.after) for c in diff.thread_changes] == [("tiny-llama", "2", "1")]
    text = format_diff(diff)
    assert "CPU THREADS DIFFER (1 model(s))" in text and "[tiny-llama] 2 -> 1 threads" in text, text
    for same in ((2, 2), (None, 1), (1, None)):  # equal, or not recorded on one side (a GPU run, an older run)
        assert not diff_runs(_report(same[0], 1.0), _report(same[1], 1.0)).thread_changes


def test_run_json_records_the_cpu_threads_and_report_diff_names_a_change(tmp_path: Path) -> None:
    runs = {}
    for n in (1, 2):
        proc, _ = run_pytest("claims/", "--model", "tiny-gpt2", "-k", "BF-3", "-q", report_dir=tmp_path / str(n),
                             env={"OMP_NUM_THREADS": str(n)})
        assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[n] = only_run_dir(tmp_path / str(n))
        models = json.loads((runs[n] / "run.json").read_text())["models"]
        assert [m["cpu_threads"] for m in models if m["name"] == "tiny-gpt2"][:1] == [n], models
    diff = subprocess.run([sys.executable, "-m", "lmfacts", "report", "diff", str(runs[1]), str(runs[2])],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "CPU THREADS DIFFER (1 model(s))" in diff.stdout and "[tiny-gpt2] 1 -> 2 threads" in diff.stdout, (
        diff.stdout + diff.stderr)


def test_an_xdist_worker_records_its_share_of_the_threads(tmp_path: Path) -> None:
    """Under -n 2 the model info comes from the worker (its test report), with the worker's thread count."""
    proc, _ = run_pytest("claims/", "--model", "tiny-gpt2", "-k", "BF-3", "-q", "-n", "2", report_dir=tmp_path)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    models = json.loads((only_run_dir(tmp_path) / "run.json").read_text())["models"]
    assert [m["cpu_threads"] for m in models] == [max(1, (os.cpu_count() or 1) // 2)], models
