"""Baselines (lmfacts.baselines): recorded from a run, then guarding later runs through the plugin.

The tolerance rule and the guard's decision table are proven on planted values first (no model);
then fake claims on ``tiny-gpt2`` whose values come from environment variables go through the whole
cycle: record → unchanged run (known finding xfailed, exit 0) → changed run (an edited number, a
finding that starts passing, a pass that moves; a prompt-reading claim not compared on other prompts)
→ ``--no-baselines`` → a malformed file (usage error naming file and key).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmfacts.baselines import (
    Baseline,
    BaselineFileError,
    ClaimBaseline,
    HeadlineBaseline,
    dtype_floor,
    load_file,
    tolerance_for,
)
from lmfacts.baselines.guard import RunFacts, comparability, judge, select
from tests.helpers import REPO, only_run_dir, run_pytest


# -- tolerances on planted values ---------------------------------------------------------------------------
def test_tolerance_is_the_ci_half_width_when_an_interval_judged_the_value() -> None:
    rec = {"intervals": {"rate": {"value": 1.1, "ci": [1.0, 1.2], "level": 0.95, "n_resamples": 2000,
                                  "method": "percentile", "verdict": "passed"}}, "measured": {"rate": 1.1}}
    tol, why = tolerance_for(rec, "rate", 1.1, "float32")
    assert tol == pytest.approx(0.1) and "bootstrap CI of rate [1, 1.2]" in why
    # a dotted headline key finds the interval named with "_", or the one with the same value
    rec2 = {"intervals": {"attn_out_rate": {"value": 2.0, "ci": [1.9, 2.3]}}}
    assert tolerance_for(rec2, "attn_out.rate", 2.0, "float32")[0] == pytest.approx(0.2)
    rec3 = {"intervals": {"margin_k1": {"value": 0.5, "ci": [0.4, 0.8]}}}
    assert tolerance_for(rec3, "per_k.0.margin", 0.5, "float32")[0] == pytest.approx(0.2)


def test_tolerance_is_half_the_spread_over_hypothesis_examples() -> None:
    rec = {"measured": {"n_examples": 10, "min_value": 1.0, "max_value": 1.5}}
    tol, why = tolerance_for(rec, "min_value", 1.0, "float32")
    assert tol == pytest.approx(0.25) and "10 Hypothesis examples" in why


def test_tolerance_never_below_the_dtype_floor() -> None:
    # a CI far narrower than float32 rounding of a corpus statistic: the floor wins
    rec = {"intervals": {"rate": {"value": 100.0, "ci": [100.0 - 1e-9, 100.0 + 1e-9]}}}
    tol, why = tolerance_for(rec, "rate", 100.0, "float32")
    assert tol == pytest.approx(0.1) and why.startswith("dtype floor (float32")
    assert dtype_floor(100.0, "float32") == pytest.approx(0.1)
    assert dtype_floor(100.0, "bfloat16") == pytest.approx(100.0 * 8 * 2.0 ** -7)  # 8 ulps of bfloat16
    assert dtype_floor(0.0, "float32") > 0  # a zero value still gets a tolerance
    for v in (3.14159, 1e-7, 12345.678):  # rounded up, never down
        t, _ = tolerance_for({}, "x", v, "float16")
        assert t >= dtype_floor(v, "float16") and t <= 1.1 * dtype_floor(v, "float16")


# -- the guard's decision table on planted values ------------------------------------------------------------
def _baseline(outcome: str, value: float = 0.5, tol: float = 0.01) -> tuple[ClaimBaseline, Baseline]:
    cb = ClaimBaseline("ZB-2", outcome, "value 0.50 <= 1" if outcome == "failed" else None,
                       (HeadlineBaseline("value", value, tol, "planted"),))
    return cb, Baseline("b.toml", {"name": "m", "dtype": "float32"}, {}, {"ZB-2": cb})


@pytest.mark.parametrize(("recorded", "today", "value", "action", "words"), [
    ("failed", "failed", 0.505, "xfail", ["known finding", "value 0.50 <= 1", "today"]),
    ("failed", "passed", 1.5, "xpass", ["[XPASS(strict)]", "no longer holds", "value = 1.5"]),
    ("failed", "failed", 0.7, "fail", ["moved past", "value = 0.7", "recorded 0.5 ± 0.01"]),
    ("passed", "passed", 0.505, "keep", []),
    ("passed", "passed", 0.7, "fail", ["left its baseline tolerance", "value = 0.7", "recorded 0.5 ± 0.01"]),
    ("passed", "failed", 0.7, "keep", ["also left"]),  # a baseline never turns a failure into a pass
    ("passed", "skipped", 0.7, "keep", []),
    ("failed", "error", 0.7, "keep", []),
    ("passed", "inconclusive", 0.7, "fail", ["left its baseline tolerance"]),
])
def test_judge_rules(recorded: str, today: str, value: float, action: str, words: list[str]) -> None:
    cb, b = _baseline(recorded)
    d = judge(cb, b, model="m", raw_outcome=today, raw_reason="today's message", measured={"value": value})
    assert d.action == action, d
    for w in words:
        assert w in d.message, d.message
    if today in ("skipped", "error"):
        assert d.info["status"].startswith("not compared")


def test_judge_missing_headline_is_an_error_not_a_finding() -> None:
    cb, b = _baseline("passed")
    d = judge(cb, b, model="m", raw_outcome="passed", raw_reason=None, measured={"other": 1.0})
    assert d.action == "error" and "not measured today" in d.message


def test_comparability_and_configuration() -> None:
    cb, b = _baseline("passed")
    b = Baseline("b.toml", {"name": "m", "dtype": "float32"},
                 {"corpus_sha256": "abc", "n_prompts": 8, "hypothesis_profile": "lmfacts-dev"}, {"ZB-2": cb})
    facts = RunFacts("m", None, None, None, "float32", "abc", 8, None, "lmfacts-dev")
    assert select([b], facts) == (b, None)
    assert select([b], RunFacts("other", None, None, None, "float32", "abc", 8, None, "x")) == (None, None)
    _, why = select([b], RunFacts("m", None, None, None, "bfloat16", "abc", 8, None, "x"))
    assert why is not None and "dtype bfloat16 (baseline: float32)" in why
    fewer = RunFacts("m", None, None, None, "float32", "abc", 4, None, "lmfacts-dev")
    assert comparability(b, fewer, reads_prompts=False, per_prompt=False) is None  # weights only: always
    assert "probes 4 prompts" in comparability(b, fewer, reads_prompts=True, per_prompt=False)
    other = RunFacts("m", None, None, None, "float32", "def", 8, None, "lmfacts-dev")
    assert "corpus" in comparability(b, other, reads_prompts=True, per_prompt=False)
    nightly = RunFacts("m", None, None, None, "float32", "abc", 8, None, "lmfacts-nightly")
    assert "Hypothesis profile" in comparability(b, nightly, reads_prompts=True, per_prompt=True)


def test_a_run_with_another_bos_convention_is_not_compared() -> None:
    cb, _ = _baseline("passed")
    common = {"corpus_sha256": "abc", "n_prompts": 8, "hypothesis_profile": "lmfacts-dev"}
    recorded_with = Baseline("b.toml", {"name": "m", "dtype": "float32"}, {**common, "prepends_bos": True},
                             {"ZB-2": cb})
    recorded_before = Baseline("b.toml", {"name": "m", "dtype": "float32"}, common, {"ZB-2": cb})

    def run(used: bool, bridge: bool) -> RunFacts:
        return RunFacts("m", None, None, None, "float32", "abc", 8, None, "lmfacts-dev", used, bridge)

    assert comparability(recorded_with, run(True, False), reads_prompts=True, per_prompt=False) is None
    why = comparability(recorded_with, run(False, False), reads_prompts=True, per_prompt=False)
    assert why is not None and "prepends no BOS" in why and "baseline's run prepends BOS" in why
    assert comparability(recorded_with, run(False, False), reads_prompts=False, per_prompt=False) is None
    # a file without prepends_bos was recorded under the bridge's default (--prepend-bos auto)
    assert comparability(recorded_before, run(False, False), reads_prompts=True, per_prompt=False) is None
    assert "prepends BOS" in comparability(recorded_before, run(True, False), reads_prompts=True, per_prompt=False)


# -- through the plugin on tiny-gpt2 ---------------------------------------------------------------------------
FAKE_CLAIMS = '''
import os

import numpy as np

from lmfacts.claims import claim
from lmfacts.stats.verdict import bootstrap_mean


def env(name, default):
    return float(os.environ.get(name, default))


@claim("ZB-1", title="reads prompts, passes", source="test", headline=("value",))  # inputs: prompts
def test_reads_prompts(ctx):
    n = len(ctx.texts)
    x = env("ZB1", 2.0)
    ctx.measured(value=x, n_prompts=n)
    ctx.check(x > 1, f"value {x:.2f} <= 1", value=x)


@claim("ZB-2", title="a finding", source="test", headline=("value",), inputs="weights")
def test_finding(ctx):
    x = env("ZB2", 0.5)
    ctx.measured(value=x)
    ctx.check(x > 1, f"value {x:.2f} <= 1", value=x)


@claim("ZB-3", title="not applicable", source="test", headline=("value",))
def test_skipped(ctx):
    ctx.skip("not applicable to this model")


@claim("ZB-4", title="crashes in the recorded run", source="test", headline=("value",))
def test_crash(ctx):
    ctx.measured(value=1.0)
    if os.environ.get("ZB4_CRASH"):
        raise RuntimeError("boom")


@claim("ZB-5", title="interval, passes", source="test", headline=("rate", "label"))
def test_interval(ctx):
    values = 1.06 + 0.05 * np.random.default_rng(0).standard_normal(400)
    b = bootstrap_mean(values, seed=0)
    ctx.measured(rate=b.value, label="not a number", curve=[1.0, 2.0])
    ctx.interval("rate", b.value, b.ci, (1.04, 1.08), n_resamples=b.n_resamples, method=b.method, level=b.level)


@claim("ZB-6", title="weights only, passes", source="test", headline=("value", "nan_value"), inputs="weights")
def test_weights_only(ctx):
    x = env("ZB6", 2.0)
    ctx.measured(value=x, nan_value=float("nan"))
    ctx.check(x > 1, f"value {x:.2f} <= 1", value=x)


@claim("ZB-7", title="another finding", source="test", headline=("value",), inputs="weights")
def test_second_finding(ctx):
    x = env("ZB7", 0.25)
    ctx.measured(value=x)
    ctx.check(x > 1, f"value {x:.2f} <= 1", value=x)
'''


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lmfacts", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def _results(report_dir: Path) -> dict[str, dict]:
    import json

    run = only_run_dir(report_dir)
    return {r["claim"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the fake claims once (ZB-4 crashing), record the baseline twice from that run."""
    tmp = tmp_path_factory.mktemp("baselines")
    module = tmp / "mod" / "test_fake_baseline_claims.py"
    module.parent.mkdir()
    module.write_text(FAKE_CLAIMS)
    empty = tmp / "no_baselines"
    empty.mkdir()
    proc, _ = run_pytest(str(module), "--model", "tiny-gpt2", "--max-prompts", "4", report_dir=tmp / "r0",
                         env={"LMFACTS_BASELINES_DIR": str(empty), "ZB4_CRASH": "1"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run_dir = only_run_dir(tmp / "r0")
    bdir = tmp / "bl"
    first, second = bdir / "tiny-gpt2.toml", tmp / "again.toml"
    for out in (first, second):
        p = _cli("baseline", "record", str(run_dir), "--model", "tiny-gpt2", "--out", str(out))
        assert p.returncode == 0, p.stderr
    return {"tmp": tmp, "module": module, "run_dir": run_dir, "bdir": bdir, "file": first, "again": second,
            "record_stderr": p.stderr}


def test_record_twice_gives_the_same_file_without_skips_and_errors(recorded: dict) -> None:
    text = recorded["file"].read_bytes()
    assert text == recorded["again"].read_bytes()
    assert "5 claims of tiny-gpt2 (3 passed, 2 known findings)" in recorded["record_stderr"]
    b = load_file(recorded["file"])
    assert set(b.claims) == {"ZB-1", "ZB-2", "ZB-5", "ZB-6", "ZB-7"}  # ZB-3 skipped, ZB-4 errored
    assert "# Not recorded from this run: ZB-3 (skipped), ZB-4 (error)." in text.decode()
    f2 = b.claims["ZB-2"]
    assert f2.outcome == "failed" and f2.reason == "value 0.50 <= 1"
    assert [(h.key, h.value) for h in f2.headline] == [("value", 0.5)]
    assert f2.headline[0].tol == pytest.approx(dtype_floor(0.5, "float32"))
    rate = b.claims["ZB-5"].headline
    assert [h.key for h in rate] == ["rate"]  # the label (a string) is not a finite scalar
    assert "bootstrap CI of rate" in rate[0].tol_from and 0.002 < rate[0].tol < 0.01
    assert [h.key for h in b.claims["ZB-6"].headline] == ["value"]  # NaN is not recorded
    assert b.model["name"] == "tiny-gpt2" and b.model["dtype"] == "float32"
    assert b.measured_by["n_prompts"] == 4 and b.measured_by["run_id"] == recorded["run_dir"].name
    assert b.measured_by["date"].startswith("20")
    assert b.measured_by["prepends_bos"] is True  # GPT-2's bridge prepends BOS; the file says which convention


def test_unchanged_run_shows_known_findings_and_passes(recorded: dict) -> None:
    tmp = recorded["tmp"]
    proc, _ = run_pytest(str(recorded["module"]), "--model", "tiny-gpt2", "--max-prompts", "4", "-rx",
                         report_dir=tmp / "r1", env={"LMFACTS_BASELINES_DIR": str(recorded["bdir"])})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "2 known findings (xfailed: 2 on tiny-gpt2) — see report" in out
    res = _results(tmp / "r1")
    f2 = res["ZB-2"]
    assert f2["outcome"] == "xfailed" and f2["baseline"]["verdict"] == "known finding"
    assert 'recorded "value 0.50 <= 1"; today: "value 0.50 <= 1"' in f2["reason"]
    tol = f2["baseline"]["tolerance"]["value"]
    assert f2["baseline"]["values"]["value"] == {"recorded": 0.5, "tol": tol, "today": 0.5, "within": True}
    assert res["ZB-1"]["outcome"] == "passed" and res["ZB-1"]["baseline"]["verdict"] == "within baseline"
    assert res["ZB-4"]["outcome"] == "passed" and "not recorded" in res["ZB-4"]["baseline"]["status"]
    md = (only_run_dir(tmp / "r1") / "report.md").read_text()
    assert "## Recorded baselines" in md and "| ZB-2 | tiny-gpt2 | xfail xfailed | known finding | value 0.50 &lt;= 1 |" in md
    html = (only_run_dir(tmp / "r1") / "report.html").read_text()
    assert "known finding (recorded failed: value 0.50 &lt;= 1;" in html
    diff = _cli("report", "diff", str(recorded["run_dir"]), str(only_run_dir(tmp / "r1")))
    assert diff.returncode == 0, diff.stdout + diff.stderr  # failed → xfailed is no regression
    # recording again from the guarded run keeps the known findings as failures, with today's finding
    again = _cli("baseline", "record", str(only_run_dir(tmp / "r1")), "--out", str(tmp / "from_guarded.toml"))
    assert again.returncode == 0, again.stderr
    b = load_file(tmp / "from_guarded.toml")
    assert b.claims["ZB-2"].outcome == "failed" and b.claims["ZB-2"].reason == "value 0.50 <= 1"
    assert {c: v.outcome for c, v in b.claims.items()} == {"ZB-1": "passed", "ZB-2": "failed", "ZB-4": "passed",
                                                            "ZB-5": "passed", "ZB-6": "passed", "ZB-7": "failed"}


def test_changed_run_fails_naming_old_and_new_values(recorded: dict) -> None:
    tmp = recorded["tmp"]
    edited = tmp / "edited"
    edited.mkdir()
    text = recorded["file"].read_text()
    head, tail = text.split('id = "ZB-2"', 1)
    tail = tail.replace("value = 0.5\n", "value = 0.7\n", 1)  # the finding's recorded number, edited
    (edited / "tiny-gpt2.toml").write_text(head + 'id = "ZB-2"' + tail)
    proc, _ = run_pytest(str(recorded["module"]), "--model", "tiny-gpt2", "--max-prompts", "2",
                         report_dir=tmp / "r2", env={"LMFACTS_BASELINES_DIR": str(edited), "ZB1": "3.0",
                                                     "ZB6": "2.5", "ZB7": "1.5"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    res = _results(tmp / "r2")
    f2 = res["ZB-2"]
    assert f2["outcome"] == "failed", f2
    assert "ZB-2 on tiny-gpt2: known finding moved past its baseline tolerance: value = 0.5, recorded 0.7" \
        in f2["reason"]
    assert res["ZB-6"]["outcome"] == "failed"
    assert "ZB-6 on tiny-gpt2: headline value left its baseline tolerance: value = 2.5, recorded 2 ±" \
        in res["ZB-6"]["reason"]
    x7 = res["ZB-7"]
    assert x7["outcome"] == "xpassed" and x7["reason"].startswith("[XPASS(strict)] known finding of ZB-7")
    assert "value = 1.5 (recorded 0.25" in x7["reason"]
    # ZB-1 read the prompts: 2 prompts today, 4 recorded → not compared, its own verdict stands
    z1 = res["ZB-1"]
    assert z1["outcome"] == "passed" and z1["baseline"]["status"].startswith("not compared: the run probes 2")
    assert "3 results changed against their baseline:" in out and "value = 2.5, recorded 2" in out
    diff = _cli("report", "diff", str(recorded["run_dir"]), str(only_run_dir(tmp / "r2")))
    assert diff.returncode == 1 and "ZB-6" in diff.stdout  # passed → failed is a regression


def test_no_baselines_gives_the_bare_outcomes(recorded: dict) -> None:
    tmp = recorded["tmp"]
    proc, _ = run_pytest(str(recorded["module"]), "--model", "tiny-gpt2", "--max-prompts", "4", "--no-baselines",
                         report_dir=tmp / "r3", env={"LMFACTS_BASELINES_DIR": str(recorded["bdir"])})
    assert proc.returncode == 1
    res = _results(tmp / "r3")
    assert res["ZB-2"]["outcome"] == "failed" and res["ZB-7"]["outcome"] == "failed"
    assert all(r["baseline"] is None for r in res.values())
    assert "known findings" not in proc.stdout


@pytest.mark.parametrize(("edit", "where"), [
    (('tol = ', 'tol = "wide" #'), "claim[1] (ZB-2).headline[0].tol"),
    (('key = "value"', 'key = "valeu"'), "claim[0] (ZB-1).headline[0].key: 'valeu' is not a headline value of ZB-1"),
    (('outcome = "failed"', 'outcome = "xfailed"'), "claim[1] (ZB-2).outcome"),
    (('id = "ZB-6"', 'id = "ZB-66"'), "claim[3].id: unknown claim 'ZB-66'"),
])
def test_malformed_baseline_is_a_usage_error_naming_file_and_key(recorded: dict, edit: tuple[str, str],
                                                                 where: str) -> None:
    tmp = recorded["tmp"]
    bad = tmp / f"bad{abs(hash(where))}"
    bad.mkdir()
    text = recorded["file"].read_text()
    if edit[0] == "tol = ":  # the second claim's first tolerance
        i = text.index('id = "ZB-2"')
        j = text.index("tol = ", i)
        text = text[:j] + 'tol = "wide"\n#' + text[j + len("tol = "):]
    else:
        text = text.replace(edit[0], edit[1], 1)
    (bad / "tiny-gpt2.toml").write_text(text)
    t0 = time.perf_counter()
    proc, _ = run_pytest(str(recorded["module"]), "--model", "tiny-gpt2", report_dir=tmp / "r_bad",
                         env={"LMFACTS_BASELINES_DIR": str(bad)})
    elapsed = time.perf_counter() - t0
    err = proc.stdout + proc.stderr
    assert proc.returncode == 4, err  # pytest's usage error
    assert str(bad / "tiny-gpt2.toml") in err and where in err, err
    assert elapsed < 30, elapsed  # before any model loads


def test_load_file_rejects_what_it_cannot_guard(tmp_path: Path) -> None:
    p = tmp_path / "b.toml"
    p.write_text('schema = 1\n[model]\nname = "m"\ndtype = "float32"\n[[claim]]\nid = "RN-1"\noutcome = "failed"\n')
    with pytest.raises(BaselineFileError, match=r"claim\[0\] \(RN-1\)\.reason: a recorded failure needs the finding"):
        load_file(p)
    p.write_text('schema = 1\n[model]\nname = "m"\ndtype = "float32"\n[[claim]]\nid = "RN-1"\noutcome = "passed"\n'
                 '[[claim.headline]]\nkey = "rate"\nvalue = nan\ntol = 0.1\n')
    with pytest.raises(BaselineFileError, match=r"headline\[0\]\.value: nan must be a finite number"):
        load_file(p)
    assert math.isfinite(dtype_floor(0.0, "float32"))
