"""The outcome contract: ``failed`` only for a false predicate on valid measurements.

An exception in a claim body is ``error`` (E) with its type and message and whatever was measured
before it; a NaN / inf / None operand of ``ctx.check`` is ``error`` naming the value; a premise
that does not hold is ``skipped`` naming the premise and its evidence. Checked with claims written
for the purpose, in a temporary test module run on a tiny model.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load_report, run_pytest

FAKE_CLAIMS = '''
from hypothesis import given, strategies as st
from lmfacts.claims import claim


@claim("ZZ-1", title="raises", source="test")
def test_raises(ctx):
    ctx.measured(before=1.5)
    raise ValueError("boom inside the statistic")


@claim("ZZ-2", title="nan operand", source="test")
def test_nan_operand(ctx):
    rate = float("nan")
    ctx.measured(rate=rate)
    ctx.check(rate > 1.0, "rate too low", rate=rate)


@claim("ZZ-3", title="false predicate", source="test")
def test_false_predicate(ctx):
    rate = 0.5
    ctx.measured(rate=rate)
    ctx.check(rate > 1.0, f"rate {rate} <= 1", rate=rate)


@claim("ZZ-4", title="needs a decoder", source="test", requires=("causal_decoder",))
def test_needs_decoder(ctx):
    ctx.measured(ran=True)
    ctx.check(True, "never", ran=1.0)


@claim("ZZ-5p", title="per-prompt raise", source="test")
def test_per_prompt_raise(ctx):
    @given(st.integers(0, 10))
    def prop(n):
        ctx.observe(float(n))
        if n > 3:
            raise ZeroDivisionError(f"injected at {n}")

    prop()


@claim("ZZ-6p", title="per-prompt false predicate", source="test")
def test_per_prompt_fail(ctx):
    @given(st.integers(0, 10))
    def prop(n):
        ctx.witness(str(n), None, n)
        ctx.check(n <= 3, f"{n} > 3", n=float(n))

    prop()


@claim("ZZ-7", title="check without operands", source="test")
def test_no_operands(ctx):
    ctx.check(False, "no operands given")
'''


def test_errors_are_errors_failures_are_findings(tmp_path: Path) -> None:
    module = tmp_path / "mod" / "test_fake_claims.py"
    module.parent.mkdir()
    module.write_text(FAKE_CLAIMS)
    proc, _ = run_pytest(str(module), "--model", "tiny-gpt2", "--model", "tiny-bert", "--max-prompts", "4",
                         "-rA", report_dir=tmp_path / "r")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    results = {(r["claim"], r["model"]): r for r in load_report(tmp_path / "r")["results"]}
    for model in ("tiny-gpt2", "tiny-bert"):
        raised = results[("ZZ-1", model)]
        assert raised["outcome"] == "error", raised
        assert raised["error"]["type"] == "ValueError" and "boom" in raised["reason"]
        assert raised["measured"] == {"before": 1.5}  # what it measured before the crash is kept
        nan = results[("ZZ-2", model)]
        assert nan["outcome"] == "error" and "rate=nan" in nan["reason"], nan
        assert results[("ZZ-3", model)]["outcome"] == "failed"
        assert results[("ZZ-5p", model)]["outcome"] == "error"
        assert "ZeroDivisionError" in results[("ZZ-5p", model)]["reason"]
        assert results[("ZZ-6p", model)]["outcome"] == "failed"
        assert results[("ZZ-7", model)]["outcome"] == "error"
    assert results[("ZZ-4", "tiny-gpt2")]["outcome"] == "passed"
    skipped = results[("ZZ-4", "tiny-bert")]
    assert skipped["outcome"] == "skipped", skipped
    assert "causal_decoder" in skipped["reason"] and "bidirectional" in skipped["reason"]
    assert skipped["premises"][0]["name"] == "causal_decoder" and not skipped["premises"][0]["holds"]
    assert "ran" not in skipped["measured"]  # the body never ran
    # the terminal says E / ERROR for the crashes, F / FAILED for the findings
    assert "ERROR" in out and "FAILED" in out
    failed_lines = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert failed_lines and all("ZZ-3" in line or "ZZ-6p" in line for line in failed_lines), failed_lines
    md = (next(p for p in (tmp_path / "r").iterdir() if p.is_dir()) / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| ZZ-1 "))
    assert "E" in row and "✗" not in row, row


XFAIL_CLAIMS = '''
from lmfacts.claims import claim


@claim("ZY-1", title="crash under an expected failure", source="test")
def test_crash_under_xfail(ctx):
    raise RuntimeError("statistic crashed")


@claim("ZY-2", title="false predicate under an expected failure", source="test")
def test_fail_under_xfail(ctx):
    ctx.check(False, "0.5 <= 1", rate=0.5)


@claim("ZY-3", title="a crash whose message quotes XPASS", source="test")
def test_crash_mentions_xpass(ctx):
    raise RuntimeError("[XPASS(strict)] is only text in this message")
'''

XFAIL_EXPECTATIONS = '''schema = 1
[[expectation]]
claim = "ZY-1"
source = "test"
match = { models = ["tiny-gpt2"] }
xfail = "known not to hold"

[[expectation]]
claim = "ZY-2"
source = "test"
match = { models = ["tiny-gpt2"] }
xfail = "known not to hold"
'''


def test_crash_is_never_an_expected_failure_or_xpass(tmp_path: Path) -> None:
    """An expectation's strict xfail covers a false predicate only: a crash under it is an error, and a
    crash whose message happens to contain 'XPASS(strict)' is an error too (the outcome is decided by the
    exception's type, never by the text of the traceback)."""
    module = tmp_path / "mod" / "test_xfail_claims.py"
    module.parent.mkdir()
    module.write_text(XFAIL_CLAIMS)
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    (exp_dir / "zy.toml").write_text(XFAIL_EXPECTATIONS)
    proc, _ = run_pytest(str(module), "--model", "tiny-gpt2", "--max-prompts", "4", "--no-baselines",
                         report_dir=tmp_path / "r", env={"LMFACTS_EXPECTATIONS_DIR": str(exp_dir)})
    out = proc.stdout + proc.stderr
    results = {r["claim"]: r for r in load_report(tmp_path / "r")["results"]}
    assert results["ZY-1"]["outcome"] == "error", out
    assert results["ZY-1"]["error"]["type"] == "RuntimeError"
    assert results["ZY-2"]["outcome"] == "xfailed", out
    assert results["ZY-3"]["outcome"] == "error", out
