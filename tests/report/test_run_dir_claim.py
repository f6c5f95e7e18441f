"""Two runs started in the same second into one --report-dir get the same run id (one-second resolution). The
second wrote its records into the first's results.jsonl and replaced its run.json: one report showed both runs'
models under one header (seen: `pytest claims/ --model A` and `--model B` started together, the report of run
20261130T162235Z-0656792 had a column for each). Each run now claims its directory: the later one is `<id>.2`."""

from __future__ import annotations

import json
from pathlib import Path

from lmfacts.options import RunOptions
from lmfacts.report.merge import merge_runs
from lmfacts.report.paths import claim_run_dir, is_run_id, list_runs
from lmfacts.session import LmfactsSession

RUN_ID = "20261130T162235Z-0656792"


def _session(report_dir: Path, model: str) -> LmfactsSession:
    options = RunOptions(models=(model,), devices=("cpu",), dtype="float32", revisions=(), prompts=None,
                         report_dir=report_dir, n_devices=None, device_map=None, trust_remote_code=False,
                         max_prompts=None, batch_size=None, probe_sample_tokens=None, compare_latest=False)
    return LmfactsSession(options, command=f"pytest claims/ --model {model}", is_controller=True, profile={},
                          run_id=RUN_ID, repo_dir=Path("."))


def test_two_runs_with_one_run_id_write_two_run_directories(tmp_path: Path) -> None:
    a, b = _session(tmp_path, "tiny-llama"), _session(tmp_path, "tiny-gpt2")
    a.open_store()
    b.open_store()
    a.add_result({"nodeid": "a", "claim": "RN-1"})
    b.add_result({"nodeid": "b", "claim": "RN-1"})
    assert a.run_dir == tmp_path / RUN_ID and b.run_dir == tmp_path / f"{RUN_ID}.2"
    assert [p.name for p in list_runs(tmp_path)] == [RUN_ID, f"{RUN_ID}.2"]  # the later run sorts last
    for s, node in ((a, "a"), (b, "b")):
        info = json.loads((s.run_dir / "run.json").read_text())
        assert info["run"]["id"] == s.run_id == s.run_dir.name
        assert [json.loads(x)["nodeid"] for x in (s.run_dir / "results.jsonl").read_text().splitlines()] == [node]
    assert json.loads((a.run_dir / "run.json").read_text())["run"]["command"].endswith("tiny-llama")
    assert json.loads((b.run_dir / "run.json").read_text())["run"]["command"].endswith("tiny-gpt2")
    a.open_store()  # opening again keeps the run's directory
    assert a.run_dir == tmp_path / RUN_ID


def test_claimed_names_are_run_ids_and_keep_the_git_sha_in_a_merge(tmp_path: Path) -> None:
    first, second, third = (claim_run_dir(tmp_path, RUN_ID) for _ in range(3))
    assert [first.name, second.name, third.name] == [RUN_ID, f"{RUN_ID}.2", f"{RUN_ID}.3"]
    assert all(is_run_id(p.name) for p in (first, second, third)) and not is_run_id(f"{RUN_ID}.x")
    a, b = _session(tmp_path / "r", "tiny-llama"), _session(tmp_path / "r", "tiny-gpt2")
    for s in (a, b):
        s.open_store()
    merged = merge_runs([a.run_dir, b.run_dir], out=tmp_path / "m")
    assert merged.name.endswith("-0656792"), merged  # the '.2' suffix is not part of the sha
