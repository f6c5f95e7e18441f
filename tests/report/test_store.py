"""RunStore: atomic run.json, appended results.jsonl, truncated last line, JSON-safe values."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from lmfacts.report import RunStore, latest_run, new_run_id, to_jsonable
from lmfacts.report.paths import git_short_sha, is_run_id


def test_round_trip(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_run_info({"run": {"id": "x"}, "models": []})
    store.write_run_info({"run": {"id": "y"}, "models": [{"name": "gpt2"}]})
    store.append_result({"claim": "RN-1", "outcome": "passed", "measured": {"rate": np.float32(1.5)}})
    store.append_result({"claim": "RN-2", "outcome": "failed"})
    info = store.read_run_info()
    assert info["run"]["id"] == "y" and info["schema_version"] == 1
    assert [r["claim"] for r in store.read_results()] == ["RN-1", "RN-2"]
    assert store.read_results()[0]["measured"]["rate"] == 1.5
    assert not list((tmp_path / "run").glob("*.tmp")), "atomic write left a temp file"


def test_truncated_last_line_is_skipped_with_warning(tmp_path):
    store = RunStore(tmp_path)
    store.append_result({"claim": "RN-1", "outcome": "passed"})
    with open(store.results_jsonl, "a", encoding="utf-8") as fh:
        fh.write('{"claim": "RN-2", "outc')
    with pytest.warns(RuntimeWarning, match="truncated"):
        recs = store.read_results()
    assert [r["claim"] for r in recs] == ["RN-1"]


def test_corrupt_middle_line_raises(tmp_path):
    store = RunStore(tmp_path)
    store.results_jsonl.write_text('{"claim": "a"}\nnot json\n{"claim": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=":2:"):
        store.read_results()


def test_missing_results_is_empty(tmp_path):
    assert RunStore(tmp_path).read_results() == []


def test_json_safe_values(tmp_path):
    value = {
        "a": np.arange(3),
        "b": np.float64("nan"),
        "c": math.inf,
        "d": (np.int64(2), {1, 3}),
        "e": tmp_path,
        "f": np.bool_(True),
    }
    out = to_jsonable(value)
    assert out == {"a": [0, 1, 2], "b": None, "c": None, "d": [2, [1, 3]], "e": str(tmp_path), "f": True}
    store = RunStore(tmp_path)
    store.append_result(value)
    line = store.results_jsonl.read_text(encoding="utf-8")
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads(line)["b"] is None


def test_run_ids_sort_by_time():
    early = new_run_id(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "abcdef123456")
    late = new_run_id(datetime(2025, 11, 1, 0, 0, 0, tzinfo=UTC), None)
    assert early == "20250102T030405Z-abcdef1"
    assert late == "20251101T000000Z-nogit"
    assert sorted([late, early]) == [early, late]
    assert is_run_id(early) and is_run_id(new_run_id()) and not is_run_id("README.md")


def test_git_short_sha_tolerates_non_repo(tmp_path):
    assert git_short_sha(tmp_path) is None
    assert git_short_sha(tmp_path / "does-not-exist") is None


def test_latest_run_skips_excluded_and_non_runs(tmp_path):
    for name in ("20250101T000000Z-aaaaaaa", "20250102T000000Z-bbbbbbb", "20250103T000000Z-ccccccc"):
        RunStore(tmp_path / name).write_run_info({"run": {"id": name}})
    (tmp_path / "zzz-not-a-run").mkdir()
    assert latest_run(tmp_path).name == "20250103T000000Z-ccccccc"
    assert latest_run(tmp_path, exclude="20250103T000000Z-ccccccc").name == "20250102T000000Z-bbbbbbb"
    assert latest_run(tmp_path / "missing") is None


def test_git_short_sha_only_for_the_top_of_a_checkout(tmp_path):
    """An installed lmfacts (site-packages inside the user's repository) must not take that repository's sha."""
    import subprocess

    repo = tmp_path / "user-project"
    inner = repo / ".venv" / "lib" / "site-packages"
    inner.mkdir(parents=True)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": __import__("os").environ["PATH"], "HOME": str(tmp_path)}
    for cmd in (["git", "init", "-q"], ["git", "commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    sha = git_short_sha(repo)
    assert sha is not None and len(sha) == 7 and is_run_id(f"20260101T000000Z-{sha}")
    assert git_short_sha(inner) is None
