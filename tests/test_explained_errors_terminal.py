"""lmfacts' own explained errors (:mod:`lmfacts.errors`) show their message in pytest's terminal, not a
traceback through library frames; any other exception (a bug) keeps its full traceback.

Input: a claim ending in E on a known condition (NaN measurements → ``NonFiniteMeasurement``; a
``NonFiniteActivationError`` raised deep in a measure). Was: the ERRORS section printed the claim's source
and every frame down to the raise (100+ lines). Now: ``Type: message`` and a one-line hint. An injected
``AttributeError`` still prints its traceback, and ``--tb=long`` prints the explained error's too. The
report records the same error either way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers import load_report, run_pytest

COMMON = ("-p", "tests.fault_injection", "claims/", "--model", "tiny-gpt2", "--max-prompts", "4")


def _errors_section(stdout: str) -> str:
    """The text between pytest's ERRORS header and the next ``====`` header."""
    m = re.search(r"^=+ ERRORS =+$(.*?)^=+ ", stdout, re.S | re.M)
    assert m, stdout[-3000:]
    return m.group(1)


def _records(report_dir: Path) -> dict[str, dict]:
    return {r["claim"]: r for r in load_report(report_dir)["results"]}


def test_an_explained_error_shows_its_message_and_a_bug_its_traceback(tmp_path: Path) -> None:
    env = {"LMFACTS_INJECT": "raise",
           "LMFACTS_INJECT_TARGETS": json.dumps(["lmfacts.measures.rn:measure_rn1", "lmfacts.measures.rn:measure_rn9"]),
           "LMFACTS_INJECT_EXC": json.dumps({"lmfacts.measures.rn:measure_rn1":
                                             "lmfacts.probe.probe:NonFiniteActivationError",
                                             "lmfacts.measures.rn:measure_rn9": "AttributeError"})}
    proc, _ = run_pytest(*COMMON, "-k", "RN-1- or RN-9-", report_dir=tmp_path / "r", env=env, timeout=300)
    section = _errors_section(proc.stdout)
    rn1, rn9 = re.split(r"^_+ ERROR at call of test_rn9", section, flags=re.M)
    assert "NonFiniteActivationError: injected fault in lmfacts.measures.rn:measure_rn1" in rn1, rn1
    assert "def test_rn1_exponential_growth" not in rn1 and "fault_injection.py:" not in rn1, rn1
    assert len(rn1.strip().splitlines()) <= 4, rn1  # the header, the message, the hint
    # the bug keeps pytest's traceback: the claim's source, the raising frame, the E line
    assert "def test_rn9_norm_is_std" in rn9 and "tests/fault_injection.py:" in rn9, rn9
    assert re.search(r"^E\s+AttributeError: injected fault in lmfacts.measures.rn:measure_rn9", rn9, re.M), rn9
    records = _records(tmp_path / "r")
    assert records["RN-1"]["outcome"] == records["RN-9"]["outcome"] == "error"
    assert records["RN-1"]["error"]["type"] == "NonFiniteActivationError"
    assert records["RN-1"]["reason"] == "NonFiniteActivationError: injected fault in lmfacts.measures.rn:measure_rn1"


def test_nan_measurements_show_no_library_frames(tmp_path: Path) -> None:
    env = {"LMFACTS_INJECT": "nan", "LMFACTS_INJECT_TARGETS": json.dumps(["lmfacts.measures.rn:measure_rn1"])}
    proc, _ = run_pytest(*COMMON, "-k", "RN-1-", report_dir=tmp_path / "r", env=env, timeout=300)
    section = _errors_section(proc.stdout)
    assert "NonFiniteMeasurement: non-finite value(s)" in section and "--tb=long" in section, section
    assert "site-packages" not in section and "lmfacts/context.py:" not in section, section
    assert "def test_rn1_exponential_growth" not in section, section
    record = _records(tmp_path / "r")["RN-1"]
    assert record["outcome"] == "error" and record["error"]["type"] == "NonFiniteMeasurement", record


def test_tb_long_shows_an_explained_errors_traceback(tmp_path: Path) -> None:
    """A developer's ``--tb=long``: the traceback is back."""
    env = {"LMFACTS_INJECT": "nan", "LMFACTS_INJECT_TARGETS": json.dumps(["lmfacts.measures.rn:measure_rn1"])}
    proc, _ = run_pytest(*COMMON, "-k", "RN-1-", "--tb=long", report_dir=tmp_path / "r", env=env, timeout=300)
    section = _errors_section(proc.stdout)
    assert "def test_rn1_exponential_growth" in section and "lmfacts/context.py:" in section, section


def test_an_unknown_hub_model_offline_is_its_message(tmp_path: Path) -> None:
    proc, _ = run_pytest("claims/", "--model", "no-such-org/no-such-model", "-k", "RN-1- or BF-1-",
                         report_dir=tmp_path / "r", env={"HF_HUB_OFFLINE": "1"}, timeout=120)
    section = _errors_section(proc.stdout)
    assert "no-such-org/no-such-model" in section and "HF_HUB_OFFLINE" in section, section
    assert "site-packages" not in section and "Traceback" not in section, section
    assert {r["outcome"] for r in _records(tmp_path / "r").values()} == {"error"}
