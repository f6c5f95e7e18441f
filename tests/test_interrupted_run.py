"""A run stopped midway (Ctrl-C, SIGTERM from a CI timeout or ``kill``) writes a report that says it is partial.

Before: SIGINT wrote report.{json,md,html} from the finished tests with nothing saying the run stopped
(``1 passed, 5 failed, 2 skipped`` read like a whole run of 32 claims); SIGTERM killed the process with
no report at all and no message. Now the plugin records the selected tests in run.json when they are
collected (status ``running``), SIGTERM ends the run like Ctrl-C, and the report names the partial
run, how it ended, how many selected tests have a result and which did not run. A run killed without
a chance to write (SIGKILL) keeps status ``running``; ``report render`` then says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmfacts.report.assemble import build_report
from tests.helpers import REPO

SELECTION = ("claims/", "-k", "RN-1 or BF-3 or BF-5 or BF-7 or RN-8", "--model", "tiny-gpt2", "--max-prompts", "4")


def _run_cmd(report_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *SELECTION, "--report-dir", str(report_dir), "-p", "no:cacheprovider",
            "-q", *extra]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
    return {**env, **extra}


def _interrupt_after_first_result(tmp_path: Path, sig: int) -> tuple[Path, int, str]:
    report_dir = tmp_path / "reports"
    cmd = _run_cmd(report_dir)
    env = _env()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        found = list(report_dir.glob("*/results.jsonl"))
        if found and found[0].read_text().count("\n") >= 1:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    runs = [p for p in report_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0], proc.returncode, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_writes_a_report_that_says_it_is_partial(tmp_path: Path, sig: int) -> None:
    run_dir, rc, out = _interrupt_after_first_result(tmp_path, sig)
    assert rc == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert (run_dir / "report.json").exists(), out[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    partial = report.get("partial")
    assert partial is not None, out[-3000:]
    name = signal.Signals(sig).name
    assert partial["status"] == "interrupted" and partial["signal"] == name, partial
    n_results = len(report["results"])
    assert 1 <= n_results < partial["n_selected"] and partial["n_results"] == n_results, partial
    assert len(partial["not_run"]) == partial["n_selected"] - n_results, partial
    for name_ in ("report.md", "report.html"):
        assert "partial report: the run was interrupted (" + name in (run_dir / name_).read_text()
    assert "partial report" in out


SIGNAL_IN_A_DESTRUCTOR = """
import os, signal

class _SendsTheSignalWhenCollected:
    def __del__(self):
        os.kill(os.getpid(), signal.{sig})
        for _ in range(100_000):  # the handler runs here, inside __del__, where Python drops its exception
            pass

_sent = []

def pytest_runtest_logreport(report):
    if report.when == "teardown" and not _sent:
        _sent.append(1)
        obj = _SendsTheSignalWhenCollected()
        del obj
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_that_lands_in_a_destructor_still_stops_the_run(tmp_path: Path, sig: int) -> None:
    """Python drops a KeyboardInterrupt raised while a destructor runs (the CI failure of stop 21: the SIGINT
    landed in the regex module's ``Group.__del__`` during garbage collection, printed ``Exception ignored``, and
    the run went on to finish as if never interrupted). The signal must still stop the run at the next test."""
    name = signal.Signals(sig).name
    (tmp_path / "signal_in_destructor.py").write_text(SIGNAL_IN_A_DESTRUCTOR.replace("{sig}", name))
    report_dir = tmp_path / "reports"
    proc = subprocess.run(_run_cmd(report_dir, "-p", "signal_in_destructor"), cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}"))
    out = proc.stdout + proc.stderr
    assert "Exception ignored" in out and "KeyboardInterrupt" in out, out[-3000:]  # the premise: it was swallowed
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    (run_dir,) = [p for p in report_dir.iterdir() if p.is_dir()]
    partial = json.loads((run_dir / "report.json").read_text())["partial"]
    assert partial["status"] == "interrupted" and partial["signal"] == name, partial
    assert 1 <= partial["n_results"] < partial["n_selected"], partial


def test_a_run_that_never_finished_renders_as_partial() -> None:
    run = {"id": "r", "completion": {"status": "running", "n_selected": 3, "selected": ["t::a", "t::b", "t::c"]}}
    report = build_report({"run": run}, [{"claim": "RN-1", "nodeid": "t::a", "outcome": "passed", "model": "m"}])
    assert report["partial"]["status"] == "running" and report["partial"]["not_run"] == ["t::b", "t::c"]
    assert "did not finish" in report["partial"]["text"] and "1 of 3 selected" in report["partial"]["text"]
    finished = {"id": "r", "completion": {"status": "finished", "n_selected": 1, "selected": ["t::a"]}}
    assert "partial" not in build_report({"run": finished}, report["results"])
    assert "partial" not in build_report({"run": {"id": "old run.json"}}, report["results"])


def test_an_xdist_run_of_the_engine_tests_opens_no_run_directory(tmp_path: Path) -> None:
    """Under xdist the controller learns the selection from the workers' collection: a run of plain tests (the
    engine's own, no claim) must open no run directory, as a serial run does not (it used to write one per
    `pytest tests/ -n 2` into reports/)."""
    from tests.helpers import run_pytest

    test_file = tmp_path / "test_plain.py"
    test_file.write_text("def test_plain():\n    assert True\n")
    report_dir = tmp_path / "reports"
    proc, _ = run_pytest(str(test_file), "-n", "2", "-q", report_dir=report_dir, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not report_dir.exists() or not any(p.is_dir() for p in report_dir.iterdir()), list(report_dir.iterdir())
