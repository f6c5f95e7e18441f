"""Checkpoint sweeps: ``--revision`` as a test-id axis, local checkpoints in step order, one model resident
at a time, and the report's trajectory section with a planted emergence step.

The end-to-end test saves three "training checkpoints" of a tiny GPT-2 (``save_pretrained``) whose
residual stream grows at a planted per-layer rate r(step) (:func:`plant_growth`): below RN-1's band
(rate > 1) at the first step, inside it at the two later ones. The sweep must measure each planted
rate, order the checkpoints by step although the shell's glob order is step-10, step-100, step-5,
and report the trajectory with emergence step 10.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lmfacts.options import RunOptions, Target, checkpoint_step, natural_key, order_checkpoint_models
from lmfacts.report.trajectory import emergence_step, trajectories, trajectory_figure, trajectory_markdown
from tests.helpers import load_report, only_run_dir, run_pytest

#: planted per-layer growth rate of the residual norm at each checkpoint step (RN-1's default band: rate > 1)
PLANTED = {5: 0.92, 10: 1.06, 100: 1.12}
#: a config.json that collection accepts (the preflight reads the architecture; no weights are needed to collect)
GPT2_CONFIG = json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
#: norm of the planted stream component; the random token embeddings (norm ≈ 0.25) are ≪ it
C = 200.0


def plant_growth(model: Any, rate: float, c: float = C) -> None:
    """Make a GPT-2's residual stream ``resid_pre[l] ≈ x_tok + c · rate**l · v`` at every position.

    ``v`` is a fixed unit vector with zero mean across d_model (so compat processing's centring of the
    writing weights leaves it alone). The position embeddings carry ``c · v``; block l's MLP output
    bias writes ``c · (rate**(l+1) − rate**l) · v``; every block's random writing weights (attention and
    MLP output projections) are scaled by 1e-3, so the planted writes dominate what the blocks add.
    Then ‖resid_pre[l]‖ = c · rate**l · (1 + O(‖x_tok‖² / (c·rate**l)²)): RN-1's fitted rate is ``rate``
    to ~1e-5 relative. Changes ``model`` in place; raises nothing.
    """
    import torch

    d = model.config.n_embd
    g = torch.Generator().manual_seed(1)
    v = torch.randn(d, generator=g)
    v = v - v.mean()
    v = v / v.norm()
    with torch.no_grad():
        model.transformer.wpe.weight.mul_(0).add_(c * v)
        for layer, block in enumerate(model.transformer.h):
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight.mul_(1e-3)
                proj.bias.zero_()
            block.mlp.c_proj.bias.add_(c * (rate ** (layer + 1) - rate ** layer) * v)


def save_checkpoints(root: Path, planted: dict[int, float]) -> list[Path]:
    """``root/step-{s}`` for each planted step: a tiny GPT-2 (seed 0) with :func:`plant_growth`, saved with
    ``save_pretrained`` together with its tokenizer. Returns the directories in step order."""
    from lmfacts.models.tiny import build_tiny_hf_model

    dirs = []
    for step, rate in sorted(planted.items()):
        model, tok, _ = build_tiny_hf_model("tiny-gpt2", seed=0)
        plant_growth(model, rate)
        out = root / f"step-{step}"
        model.save_pretrained(out)
        tok.save_pretrained(out)
        dirs.append(out)
    return dirs


# -- option parsing, ids, ordering -----------------------------------------------------------------------
def _options(models: tuple[str, ...], revisions: tuple[str, ...] = (), devices: tuple[str, ...] = ("cpu",)
             ) -> RunOptions:
    return RunOptions(models=models, devices=devices, dtype="float32", revisions=revisions, prompts=None,
                      report_dir=Path("reports"), n_devices=None, device_map=None, trust_remote_code=False,
                      max_prompts=None, batch_size=None, probe_sample_tokens=None, compare_latest=False)


def test_revisions_are_a_test_id_axis_between_models_and_devices() -> None:
    o = _options(("pythia-160m", "tiny-gpt2"), ("step1000", "step143000"), ("cpu", "cuda"))
    assert [t.id for t in o.targets] == [
        "pythia-160m@step1000-cpu", "pythia-160m@step1000-cuda", "pythia-160m@step143000-cpu",
        "pythia-160m@step143000-cuda", "tiny-gpt2-cpu", "tiny-gpt2-cuda"]  # a tiny model has no revisions
    assert _options(("smollm2-135m",)).targets == [Target("smollm2-135m", "cpu")]
    assert Target("smollm2-135m", "cpu").id == "smollm2-135m-cpu"  # no revision: today's ids
    assert _options(("EleutherAI/pythia-70m",), ("step3000",)).targets[0].id == "EleutherAI_pythia-70m@step3000-cpu"
    assert _options(("pythia-160m",), ("main",)).revision == "main"
    assert _options(("pythia-160m",), ("a", "b")).revision is None


def test_checkpoint_step_and_family() -> None:
    assert [checkpoint_step(s) for s in ("step1000", "step-10", "checkpoint_3_final", "main", None)] == \
        [1000, 10, 3, None, None]
    assert sorted(["step-10", "step-2", "step-100", "step-1"], key=natural_key) == \
        ["step-1", "step-2", "step-10", "step-100"]
    assert Target("pythia-160m", "cpu", "step1000").checkpoint() == \
        {"family": "pythia-160m", "step": 1000, "revision": "step1000"}
    assert Target("pythia-160m", "cpu", "main").checkpoint() is None  # no step to place it at
    assert Target("tiny-gpt2", "cpu").checkpoint() is None


def test_local_checkpoints_are_ordered_by_the_number_in_their_name(tmp_path: Path) -> None:
    for name in ("step-10", "step-2", "step-100", "final"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(GPT2_CONFIG)
    glob_order = tuple(str(tmp_path / n) for n in sorted(["step-10", "step-2", "step-100"]))
    got = order_checkpoint_models(("tiny-gpt2", *glob_order, "tiny-llama"))
    assert got == ("tiny-gpt2", *(str(tmp_path / n) for n in ("step-2", "step-10", "step-100")), "tiny-llama")
    assert Target(str(tmp_path / "step-10"), "cpu").checkpoint() == \
        {"family": f"{tmp_path.name}/step-*", "step": 10, "revision": None}


def test_collect_only_ids_with_and_without_revision(tmp_path: Path) -> None:
    """Collection needs no weights, so a hub alias collects offline: the revision is in the id."""
    args = ["claims/", "-k", "test_rn1_exponential_growth", "--collect-only", "-q"]
    proc, _ = run_pytest(*args, "--model", "pythia-160m", "--revision", "step1000", "--revision", "step2000",
                         report_dir=tmp_path)
    assert "[RN-1-pythia-160m@step1000-cpu]" in proc.stdout and "[RN-1-pythia-160m@step2000-cpu]" in proc.stdout
    proc, _ = run_pytest(*args, "--model", "pythia-160m", report_dir=tmp_path)
    assert "[RN-1-pythia-160m-cpu]" in proc.stdout and "@" not in proc.stdout.split("[RN-1-")[1].split("]")[0]


def test_a_glob_after_model_sweeps_every_checkpoint_quoted_or_expanded(tmp_path: Path) -> None:
    from lmfacts.models.tiny import byte_tokenizer_dir

    for name in ("step-10", "step-2", "step-100"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(GPT2_CONFIG)
        for f in byte_tokenizer_dir().iterdir():  # the preflight refuses a directory without tokenizer files
            (tmp_path / name / f.name).write_bytes(f.read_bytes())
    expanded = sorted(str(tmp_path / n) for n in ("step-10", "step-2", "step-100"))
    args = ["-k", "test_rn1_exponential_growth", "--collect-only", "-q"]
    for model_args in (["--model", *expanded], ["--model", str(tmp_path / "step-*")]):
        proc, _ = run_pytest(*args, *model_args, "claims/", report_dir=tmp_path / "r")
        ids = [line.split("[")[1].rstrip("]") for line in proc.stdout.splitlines() if "[RN-1-" in line]
        assert ids == ["RN-1-step-2-cpu", "RN-1-step-10-cpu", "RN-1-step-100-cpu"], proc.stdout[-2000:]
    proc, _ = run_pytest(*args, "--model", str(tmp_path / "nothing-*"), "claims/", report_dir=tmp_path / "r")
    assert proc.returncode == 4 and "matches no model directory" in proc.stderr


def test_same_named_checkpoints_of_two_runs_stay_apart(tmp_path: Path) -> None:
    """``runA/step-5`` and ``runB/step-5``: each shows as its distinguishing path parts, in test ids and models."""
    from lmfacts.options import distinct_display_names

    for run in ("runA", "runB", "x/runC", "y/runC"):
        (tmp_path / run / "step-5").mkdir(parents=True)
        (tmp_path / run / "step-5" / "config.json").write_text(GPT2_CONFIG)
    a, b, c, d = (str(tmp_path / r / "step-5") for r in ("runA", "runB", "x/runC", "y/runC"))
    assert distinct_display_names((a, b, "tiny-gpt2", c, d)) == {
        a: "runA/step-5", b: "runB/step-5", c: "x/runC/step-5", d: "y/runC/step-5"}
    assert distinct_display_names((a, a, "tiny-gpt2")) == {}  # one model named twice: nothing to tell apart
    (tmp_path / "z" / "tiny-gpt2").mkdir(parents=True)  # a local directory named like a registered model
    (tmp_path / "z" / "tiny-gpt2" / "config.json").write_text(GPT2_CONFIG)
    z = str(tmp_path / "z" / "tiny-gpt2")
    assert distinct_display_names(("tiny-gpt2", z)) == {z: "z/tiny-gpt2"}
    assert [t.id for t in _options(("tiny-gpt2", z)).targets] == ["tiny-gpt2-cpu", "z_tiny-gpt2-cpu"]
    targets = _options((a, b)).targets
    assert [t.label for t in targets] == ["runA/step-5", "runB/step-5"]
    assert [t.id for t in targets] == ["runA_step-5-cpu", "runB_step-5-cpu"]
    assert Target(a, "cpu").label == "step-5"  # alone, a checkpoint keeps its short name


def test_same_named_checkpoints_are_measured_and_reported_apart(tmp_path: Path) -> None:
    dirs = {run: save_checkpoints(tmp_path / run, {5: rate})[0] for run, rate in (("runA", 0.92), ("runB", 1.12))}
    args = ["claims/", "-k", "test_rn1_exponential_growth", "--max-prompts", "12", "--no-baselines", "-q",
            "--model", str(dirs["runA"]), "--model", str(dirs["runB"])]
    proc, _ = run_pytest(*args, report_dir=tmp_path / "reports")
    assert proc.returncode == 1, proc.stdout[-3000:]  # runA's checkpoint fails RN-1 (planted rate < 1)
    report = load_report(tmp_path / "reports")
    by_model = {r["model"]: r for r in report["results"]}
    assert set(by_model) == {"runA/step-5", "runB/step-5"}, list(by_model)
    assert by_model["runA/step-5"]["measured"]["rate"] == pytest.approx(0.92, rel=1e-3)
    assert by_model["runB/step-5"]["measured"]["rate"] == pytest.approx(1.12, rel=1e-3)
    assert {m["name"] for m in report["models"]} >= {"runA/step-5", "runB/step-5"}, report["models"]


# -- one model resident at a time ------------------------------------------------------------------------
class _FakeInfo:
    def __init__(self, name: str) -> None:
        self.name, self.weight_processing, self.notes, self.device = name, "raw", [], "cpu"


class _FakeLoaded:
    live: list[str] = []
    peak = 0

    def __init__(self, model: str, revision: str | None) -> None:
        self.info = _FakeInfo(model)
        self.revision = revision
        _FakeLoaded.live.append(f"{model}@{revision}")
        _FakeLoaded.peak = max(_FakeLoaded.peak, len(_FakeLoaded.live))

    def release(self) -> None:
        _FakeLoaded.live.remove(f"{self.info.name.split('@')[0]}@{self.revision}")


def test_pool_holds_one_checkpoint_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import lmfacts.models.loading as loading
    from lmfacts.pool import ModelPool

    loads: list[tuple[str, str | None]] = []

    def fake_load(model: str, *, revision: str | None = None, **_: Any) -> _FakeLoaded:
        loads.append((model, revision))
        return _FakeLoaded(model, revision)

    monkeypatch.setattr(loading, "load_model", fake_load)
    _FakeLoaded.live, _FakeLoaded.peak = [], 0
    o = _options(("pythia-160m",), ("step1", "step2", "step3"))
    pool = ModelPool(o)
    for t in o.targets:
        lm = pool.get(t)
        assert pool.get(t) is lm and pool.resident(t) is lm  # the same checkpoint is not loaded twice
        assert lm.info.name == t.label  # the report tells the checkpoints apart
    pool.release()
    assert loads == [("pythia-160m", "step1"), ("pythia-160m", "step2"), ("pythia-160m", "step3")]
    assert _FakeLoaded.peak == 1 and _FakeLoaded.live == []


def test_xdist_scope_keeps_each_revision_whole() -> None:
    pytest.importorskip("xdist")
    from lmfacts.xdist_scheduling import target_scope

    node = "claims/test_rn_norm_growth.py::test_rn1_exponential_growth[RN-1-pythia-160m@step1000-cpu]"
    assert target_scope(node) == target_scope(node + "@pythia-160m@step1000-cpu") == "target:pythia-160m@step1000-cpu"
    assert target_scope(node.replace("step1000", "step2000")) == "target:pythia-160m@step2000-cpu"


# -- emergence on synthetic records ----------------------------------------------------------------------
def _rec(step: int, outcome: str, rate: float, raw: str | None = None) -> dict[str, Any]:
    return {"claim": "RN-1", "title": "t", "model": f"step-{step}", "device": "cpu", "outcome": outcome,
            "headline": ["rate"], "measured": {"rate": rate},
            "intervals": {"rate": {"band": [1.0, None]}},
            "baseline": {"raw_outcome": raw} if raw else None,
            "checkpoint": {"family": "ck/step-*", "step": step, "revision": None}}


def test_emergence_is_the_first_step_from_which_the_claim_keeps_holding() -> None:
    assert emergence_step([(1, False), (2, True), (3, True)]) == 2
    assert emergence_step([(1, True), (2, False), (3, True), (4, True)]) == 3  # a dip restarts the run
    assert emergence_step([(1, True), (2, True), (3, False)]) is None  # does not hold at the end
    assert emergence_step([(1, True), (2, None), (3, True)]) == 3  # undecided (skip, error) breaks the run
    assert emergence_step([(1, True), (2, True)]) == 1
    assert emergence_step([]) is None
    # unordered input, and a baseline's guard does not change what the claim itself said
    recs = [_rec(30, "passed", 1.1), _rec(10, "failed", 0.9), _rec(20, "failed", 1.05, raw="passed")]
    (t,) = trajectories(recs)
    assert [p["step"] for p in t["points"]] == [10, 20, 30]
    assert [p["values"]["rate"] for p in t["points"]] == [0.9, 1.05, 1.1]
    assert t["emergence_step"] == 20 and not t["holds_from_first"]
    assert trajectories(recs[:1]) == []  # one step is no trajectory
    assert trajectories([{**r, "checkpoint": None} for r in recs]) == []
    md = "\n".join(trajectory_markdown({"results": recs}))
    assert "## Checkpoint trajectories" in md and "| step 10 | step 20 | step 30 |" in md
    fig = trajectory_figure(t)
    assert fig["vspans"][0]["lo"] == 20 and fig["series"][0]["y"] == [0.9, 1.05, 1.1]


# -- end to end: a sweep over three saved checkpoints ------------------------------------------------------
def test_sweep_over_saved_checkpoints_reports_the_planted_emergence(tmp_path: Path) -> None:
    dirs = save_checkpoints(tmp_path / "ckpts", PLANTED)
    glob_order = sorted(str(d) for d in dirs)  # what the shell's `--model ckpts/step-*` gives
    assert [Path(p).name for p in glob_order] == ["step-10", "step-100", "step-5"]
    args = ["claims/", "-k", "test_rn1_exponential_growth", "--max-prompts", "12", "--no-baselines", "-q",
            "--model", *glob_order]  # as the shell passes `--model ckpts/step-*`: one --model, three paths
    proc, _ = run_pytest(*args, report_dir=tmp_path / "reports")
    assert proc.returncode == 1, proc.stdout[-3000:]  # the first checkpoint fails RN-1: a finding
    run_dir = only_run_dir(tmp_path / "reports")
    ran = [json.loads(line)["model"] for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert ran == ["step-5", "step-10", "step-100"]  # loaded in step order, one after the other
    report = load_report(tmp_path / "reports")
    by_model = {r["model"]: r for r in report["results"]}
    for step, rate in PLANTED.items():
        r = by_model[f"step-{step}"]
        assert r["nodeid"].endswith(f"[RN-1-step-{step}-cpu]")
        assert r["measured"]["rate"] == pytest.approx(rate, rel=1e-3), (step, r["measured"]["rate"])
        assert r["outcome"] == ("passed" if rate > 1 else "failed"), (step, r["outcome"], r["reason"])
    (t,) = report["trajectories"]
    assert t["family"] == "ckpts/step-*" and t["claim"] == "RN-1"
    assert [p["step"] for p in t["points"]] == [5, 10, 100]
    assert [p["holds"] for p in t["points"]] == [False, True, True]
    assert t["emergence_step"] == 10
    md = (run_dir / "report.md").read_text()
    section = md.split("## Checkpoint trajectories")[1]
    row = next(line for line in section.splitlines() if line.startswith("| **RN-1**"))
    assert row.split("|")[-2].strip() == "10"  # the emergence column
    assert "✗" in row.split("|")[3] and "✓" in row.split("|")[4]
    html = (run_dir / "report.html").read_text()
    traj = html.split('id="trajectories"')[1].split("<h2")[0]
    assert "RN-1" in traj and "data:image/png;base64," in traj and "could not be drawn" not in traj


def test_sweep_over_hub_revisions_from_an_hf_cache(tmp_path: Path) -> None:
    """``--revision`` repeated on a hub id: each revision (refs/stepN → its own snapshot) is loaded, measured
    at its own planted rate, reported as name@revision, and placed on the trajectory by its step."""
    from lmfacts.models.tiny import build_tiny_hf_model, write_hf_cache

    cache, hf_id = tmp_path / "hub", "lmfacts-test/ckpt-gpt2"
    for i, (step, rate) in enumerate(sorted(PLANTED.items())):
        snapshot = write_hf_cache("tiny-gpt2", cache, hf_id, revision=f"step{step}", commit=f"{i + 1:040x}")
        model, _, _ = build_tiny_hf_model("tiny-gpt2", seed=0)
        plant_growth(model, rate)
        model.save_pretrained(snapshot)  # the planted weights of this step replace the random ones
    (cache / "models--lmfacts-test--ckpt-gpt2" / "refs" / "main").write_text(f"{len(PLANTED):040x}")
    revisions = ["step100", "step5", "step10"]  # any order: the trajectory is by step
    proc, _ = run_pytest("claims/", "-k", "test_rn1_exponential_growth", "--max-prompts", "12", "--no-baselines",
                         "-q", "--model", hf_id, *(a for r in revisions for a in ("--revision", r)),
                         report_dir=tmp_path / "reports", env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1, proc.stdout[-3000:]
    report = load_report(tmp_path / "reports")
    by_model = {r["model"]: r for r in report["results"]}
    assert sorted(by_model) == sorted(f"{hf_id}@{r}" for r in revisions)
    for step, rate in PLANTED.items():
        r = by_model[f"{hf_id}@step{step}"]
        assert r["nodeid"].endswith(f"[RN-1-lmfacts-test_ckpt-gpt2@step{step}-cpu]")
        assert r["measured"]["rate"] == pytest.approx(rate, rel=1e-3)  # this revision's weights were loaded
        assert r["checkpoint"] == {"family": hf_id, "step": step, "revision": f"step{step}"}
    loaded = {m["name"]: m["revision"] for m in report["models"]}
    assert loaded == {f"{hf_id}@step{s}": f"step{s}" for s in PLANTED}
    (t,) = report["trajectories"]
    assert t["family"] == hf_id and [p["step"] for p in t["points"]] == [5, 10, 100] and t["emergence_step"] == 10

