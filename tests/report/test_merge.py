"""``python -m lmfacts report merge``: two single-model runs merge into the report of one two-model run.

Three real runs of the same claims (tiny-gpt2 alone, tiny-llama alone, both together) on the same
8-prompt corpus subset; the merged report.json must equal the two-model run's with only what names
a particular run left out (run ids, creation times, commands, durations, the report directory).
Runs that are not comparable (another corpus, another lmfacts version) or that measured the same
test twice are refused with a message naming each difference and its run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lmfacts.report.merge import MergeError, merge_runs, merged_replay
from tests.helpers import REPO, only_run_dir, run_pytest

#: a spread of claims that run in seconds on tiny models: interval verdicts, figures, weight-only claims,
#: premises that skip, failures
CLAIMS = "(RN-1 and not RN-1p) or RN-3 or RN-8 or RN-9 or BF-2 or BF-3 or LL- or MA-1"
BASE = ("claims/", "-k", CLAIMS, "--max-prompts", "8", "-q", "--no-baselines")
#: keys that name a run, a machine's timing or the command, not what was measured
RUN_SPECIFIC = {"id", "created_utc", "command", "argv", "merged_from", "report_dir", "replay"}
TIMINGS = {"duration_s", "load_s", "compat_s", "seconds", "convert_s"}


def merge_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m lmfacts report merge ARGS`` from the repository root."""
    return subprocess.run([sys.executable, "-m", "lmfacts", "report", "merge", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run directories: ``gpt2`` (tiny-gpt2 alone), ``llama`` (tiny-llama alone), ``both`` (one run of both)."""
    root = tmp_path_factory.mktemp("merge")
    out = {}
    for key, models in (("gpt2", ["tiny-gpt2"]), ("llama", ["tiny-llama"]), ("both", ["tiny-gpt2", "tiny-llama"])):
        args = [a for m in models for a in ("--model", m)]
        proc, _ = run_pytest(*BASE, *args, report_dir=root / key)
        assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-2000:]
        out[key] = only_run_dir(root / key)
    return out


def normalised(value: Any, path: str = "") -> Any:
    """``value`` without run-specific keys and timings (recursively); floats kept exact."""
    if isinstance(value, dict):
        return {k: normalised(v, f"{path}.{k}") for k, v in value.items()
                if k not in TIMINGS and not (k in RUN_SPECIFIC and path in (".run", ".run.options", ".run.hypothesis"))
                and not (k == "runs" and path == ".models")}  # a merged model names its source run
    if isinstance(value, list):
        return [normalised(v, path) for v in value]
    return value


def test_merged_report_equals_the_two_model_run(runs: dict[str, Path], tmp_path: Path) -> None:
    proc = merge_cli(str(runs["gpt2"]), str(runs["llama"]), "--out", str(tmp_path / "merged"))
    assert proc.returncode == 0, proc.stderr
    merged_dir = only_run_dir(tmp_path / "merged")
    assert str(merged_dir / "report.md") in proc.stdout
    merged = json.loads((merged_dir / "report.json").read_text())
    both = json.loads((runs["both"] / "report.json").read_text())
    assert {r["model"] for r in merged["results"]} == {"tiny-gpt2", "tiny-llama"}
    assert merged["summary"] == both["summary"]  # the matrix's outcome counts, per model too
    assert [(r["claim"], r["model"], r["outcome"]) for r in merged["results"]] == \
        [(r["claim"], r["model"], r["outcome"]) for r in both["results"]]
    a, b = normalised(merged), normalised(both)
    for key in sorted(set(a) | set(b)):
        assert a.get(key) == b.get(key), key  # results (every measured number), models, probes, run facts
    # the rendered report from the matrix on (per-model sections, numbers) is the same text
    md_m = (merged_dir / "report.md").read_text()
    md_b = (runs["both"] / "report.md").read_text()
    assert md_m[md_m.index("## Claims × models"):] == md_b[md_b.index("## Claims × models"):]
    # the header says it is a merge, and of which runs (a one-run report says nothing of the kind)
    said = f"merged from 2 runs: {runs['gpt2'].name} (tiny-gpt2); {runs['llama'].name} (tiny-llama)"
    head = md_m[:md_m.index("## Claims × models")]
    assert said in head.replace("\\", ""), head
    assert "merged from" not in md_b
    html = (merged_dir / "report.html").read_text()
    assert said in html.replace("&#x27;", "'")
    assert html.count("data:image/png;base64,") == (runs["both"] / "report.html").read_text().count(
        "data:image/png;base64,") > 0
    run = merged["run"]
    assert run["options"]["models"] == ["tiny-gpt2", "tiny-llama"]
    assert [m["id"] for m in run["merged_from"]] == [runs["gpt2"].name, runs["llama"].name]
    replay = run["hypothesis"]["replay"]  # one command that replays any test of either model
    assert "--model tiny-gpt2 --model tiny-llama" in replay, replay


def test_merge_refuses_another_corpus_and_names_what_differs(runs: dict[str, Path], tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The cat sat on the mat.\nA second prompt, a little longer than the first one.\n")
    proc, _ = run_pytest("claims/", "-k", "BF-3", "--model", "tiny-llama", "--prompts", str(prompts), "-q",
                         report_dir=tmp_path / "other")
    assert proc.returncode in (0, 1), proc.stdout[-2000:]
    other = only_run_dir(tmp_path / "other")
    proc = merge_cli(str(runs["gpt2"]), str(other), "--out", str(tmp_path / "merged"))
    assert proc.returncode == 2 and not (tmp_path / "merged").exists()
    err = proc.stderr
    assert "cannot merge" in err and "corpus sha256" in err and "probe prompts" in err, err
    assert str(runs["gpt2"]) in err and str(other) in err
    sha_a = json.loads((runs["gpt2"] / "run.json").read_text())["run"]["corpus"]["sha256"]
    assert sha_a in err and "lmfacts version" not in err  # only what differs is listed


def test_merge_refuses_another_lmfacts_version_and_a_test_measured_twice(runs: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    shutil.copytree(runs["llama"], newer)
    info = json.loads((newer / "run.json").read_text())
    info["run"]["lmfacts_version"] = "999.0"
    (newer / "run.json").write_text(json.dumps(info))
    with pytest.raises(MergeError, match=r"lmfacts version: .* in .*999\.0 in") as exc:
        merge_runs([runs["gpt2"], newer], tmp_path / "out")
    assert "corpus" not in str(exc.value)
    with pytest.raises(MergeError, match=r"measured by both .*tiny-gpt2"):
        merge_runs([runs["gpt2"], runs["both"]], tmp_path / "out")
    with pytest.raises(MergeError, match="at least two runs"):
        merge_runs([runs["gpt2"]], tmp_path / "out")
    proc = merge_cli(str(tmp_path / "nowhere"), str(runs["gpt2"]), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "no such run directory" in proc.stderr


def test_merge_names_two_different_models_that_share_a_name(runs: dict[str, Path], tmp_path: Path) -> None:
    """Two runs of different models shown under one name (checkpoint dirs runA/step-5 and runB/step-5, each run in
    its own CI job): the refusal says they are different models and how to get distinct names, not only that a
    test was measured twice."""
    other = tmp_path / "other"
    shutil.copytree(runs["gpt2"], other)
    info = json.loads((other / "run.json").read_text())
    info["run"]["id"] = "20260101T000000Z-other00"
    for m in info["models"]:
        m["hf_id_or_path"] = "/ckpts/runB/tiny-gpt2"
    (other / "run.json").write_text(json.dumps(info))
    mine = json.loads((runs["gpt2"] / "run.json").read_text())
    assert {m.get("hf_id_or_path") for m in mine["models"]} != {"/ckpts/runB/tiny-gpt2"}
    with pytest.raises(MergeError, match=r"two different models under the same name 'tiny-gpt2' .*runB") as exc:
        merge_runs([runs["gpt2"], other], tmp_path / "out")
    assert "measured by both" not in str(exc.value)


def test_merge_reads_report_dirs_and_report_json(runs: dict[str, Path], tmp_path: Path) -> None:
    """A report directory (its latest run) and a bare report.json (a downloaded artifact) merge like runs."""
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(runs["llama"] / "report.json", bare / "report.json")
    run_dir = merge_runs([runs["gpt2"].parent, bare], tmp_path / "out")
    from lmfacts.report.render import render_run

    render_run(run_dir)
    merged = json.loads((run_dir / "report.json").read_text())
    both = json.loads((runs["both"] / "report.json").read_text())
    assert normalised(merged)["results"] == normalised(both)["results"]


def test_merged_replay_joins_the_models_only_when_nothing_else_differs() -> None:
    a = "/venv/bin/python -m pytest claims/ --model tiny-gpt2 --max-prompts 8 --hypothesis-profile dev"
    b = "/other/python -m pytest claims/ --model tiny-llama --max-prompts 8 --hypothesis-profile dev --report-dir r"
    assert merged_replay([a, b]) == ("/venv/bin/python -m pytest claims/ --model tiny-gpt2 --model tiny-llama "
                                     "--max-prompts 8 --hypothesis-profile dev")
    seeded = [a.replace("dev", "nightly --hypothesis-seed 1"), b.replace("dev", "nightly --hypothesis-seed 2")]
    assert merged_replay(seeded) is None  # each job drew its own seed: no single replay command
    assert merged_replay([a, None]) is None


def test_merge_of_one_run_with_itself_says_so(runs: dict[str, Path], tmp_path: Path) -> None:
    """``report merge A A`` (or A and A/report.json): one run given twice, not two runs differing in every test."""
    for second in (runs["gpt2"], runs["gpt2"] / "report.json"):
        proc = merge_cli(str(runs["gpt2"]), str(second), "--out", str(tmp_path / "out"))
        assert proc.returncode == 2, proc.stderr
        assert "the same run is given more than once" in proc.stderr and "measured by both" not in proc.stderr
        assert not (tmp_path / "out").exists()


def test_merge_of_a_truncated_report_json_names_it(tmp_path: Path) -> None:
    """A report.json cut short (an interrupted artifact download) is refused naming the file, no traceback."""
    from lmfacts.report.synthetic import write_synthetic_run

    good = write_synthetic_run(tmp_path / "reports" / "20250101T000000Z-aaaaaaa")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "report.json").write_text('{"results": [', encoding="utf-8")
    for other in (cut, cut / "report.json"):
        with pytest.raises(MergeError, match=r"cut/report\.json: not an lmfacts report\.json \(JSONDecodeError"):
            merge_runs([good, other], tmp_path / "out")
    proc = merge_cli(str(good), str(cut), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "not an lmfacts report.json" in proc.stderr and "Traceback" not in proc.stderr
