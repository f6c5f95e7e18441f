"""The plugin's contract: options, usage errors, test ids and selection, the report, xdist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, load_report, run_pytest


def _ids(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_collect_only_does_not_import_torch() -> None:
    code = ("import sys, pytest; rc = pytest.main(['--collect-only', '-q', 'claims/', '-p', 'no:cacheprovider']);"
            "heavy = [m for m in ('torch', 'transformer_lens', 'transformers') if m in sys.modules];"
            "print('HEAVY', heavy); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout[-2000:]


def test_unknown_model_is_a_fast_usage_error(tmp_path: Path) -> None:
    proc, seconds = run_pytest("claims/", "--model", "does-not-exist", report_dir=tmp_path)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert seconds < 10
    err = proc.stderr + proc.stdout
    assert "does-not-exist" in err and "gpt2-xl" in err and "smollm2-135m" in err


@pytest.mark.parametrize("args, needle", [
    (["--dtype", "float64"], "--dtype"),
    (["--device", "gpu"], "--device"),
    (["--device", "cuda:7"], "cuda"),
    (["--prompts", "no/such/file.txt"], "--prompts"),
    (["--batch-size", "0"], "positive integer"),
])
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    proc, _ = run_pytest("claims/", "--collect-only", *args, report_dir=tmp_path)
    assert proc.returncode in (pytest.ExitCode.USAGE_ERROR, 2), proc.stdout + proc.stderr
    assert needle in proc.stderr + proc.stdout


def test_hub_model_without_hub_fails_fast_with_instructions(tmp_path: Path) -> None:
    from lmfacts.models.hub import hub_reachable

    if hub_reachable():
        pytest.skip("a model hub is reachable from here; the offline failure path cannot be exercised")
    proc, seconds = run_pytest("claims/", "-k", "RN-1 and not RN-1p", "--model", "gpt2-xl", "-q",
                               report_dir=tmp_path, env={"HF_HUB_OFFLINE": "0"})
    assert proc.returncode != 0
    assert seconds < 25  # < 15 s of lmfacts's own, plus interpreter and import start-up
    out = proc.stdout + proc.stderr
    assert "HF cache" in out or "HF_HUB_OFFLINE" in out, out[-3000:]


def test_test_ids_carry_claim_model_device_and_select_with_k(tmp_path: Path) -> None:
    base = ["claims/", "--collect-only", "-q", "--model", "tiny-gpt2", "--model", "tiny-bert"]
    proc, _ = run_pytest(*base, report_dir=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = _ids(proc)
    assert any("[RN-1-tiny-gpt2-cpu]" in i for i in ids), ids[:5]
    rn, _ = run_pytest(*base, "-k", "RN", report_dir=tmp_path)
    rn_ids = _ids(rn)
    assert rn_ids and all("[RN-" in i for i in rn_ids), rn_ids
    assert len(rn_ids) == sum("[RN-" in i for i in ids)
    bfrs, _ = run_pytest(*base, "-k", "BF or RS", report_dir=tmp_path)
    bfrs_ids = _ids(bfrs)
    assert all("[BF-" in i or "[RS-" in i for i in bfrs_ids), bfrs_ids
    assert len(bfrs_ids) == sum("[BF-" in i or "[RS-" in i for i in ids)
    model, _ = run_pytest(*base, "-k", "tiny-bert", report_dir=tmp_path)
    assert _ids(model) and all("tiny-bert" in i for i in _ids(model))


def test_rn1_report_matches_the_contract(tmp_path: Path) -> None:
    proc, _ = run_pytest("claims/", "-k", "RN-1 and not RN-1p", "--model", "tiny-gpt2", "--model", "tiny-bert",
                         "--max-prompts", "12", "-q", report_dir=tmp_path)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    report = load_report(tmp_path)
    assert report["schema_version"] == 1
    assert {"id", "created_utc", "lmfacts_version", "command", "versions"} <= set(report["run"])
    assert {"torch", "transformer_lens", "transformers"} <= set(report["run"]["versions"])
    model_keys = {"name", "source", "architecture", "n_layers", "d_model", "device", "dtype", "quantization",
                  "weight_processing", "load_s"}
    assert report["models"] and all(model_keys <= set(m) for m in report["models"])
    by_model = {r["model"]: r for r in report["results"] if r["claim"] == "RN-1"}
    gpt2 = by_model["tiny-gpt2"]
    keys = {"claim", "nodeid", "model", "device", "outcome", "statistic", "measured", "expected", "source",
            "reason", "duration_s"}
    assert keys <= set(gpt2)
    assert gpt2["outcome"] in ("passed", "failed")
    m = gpt2["measured"]
    assert {"rate", "window", "r2", "norms"} <= set(m)
    assert len(m["norms"]) == 4 + 1  # tiny-gpt2: 4 blocks plus the final residual
    bert = by_model["tiny-bert"]
    assert bert["outcome"] == "skipped" and "encoder" in bert["reason"]


def test_malformed_expectation_file_names_file_and_key(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "broken.toml").write_text('schema = 1\n[[expectation]]\nclaim = "RN-1"\nsource = "x"\n')
    proc, _ = run_pytest("claims/", "--collect-only", "-q", report_dir=tmp_path / "r",
                         env={"LMFACTS_EXPECTATIONS_DIR": str(exp)})
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    err = proc.stderr + proc.stdout
    assert "broken.toml" in err and "match" in err


def test_xdist_two_workers_write_one_complete_report(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    args = ["claims/", "-k", "RN-1 or RN-4", "--model", "tiny-gpt2", "--model", "tiny-llama",
            "--model", "tiny-neox", "--max-prompts", "8", "-n", "2", "-q"]
    proc, _ = run_pytest(*args, report_dir=tmp_path)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    report = load_report(tmp_path)
    got = sorted(r["model"] for r in report["results"] if r["claim"] == "RN-1")
    assert {r["claim"] for r in report["results"]} == {"RN-1", "RN-1p", "RN-4", "RN-4p"}
    assert got == ["tiny-gpt2", "tiny-llama", "tiny-neox"]
    assert all(r["outcome"] in ("passed", "failed", "xfailed", "skipped") for r in report["results"])
    workers = {}
    for r in report["results"]:
        workers.setdefault(r["model"], set()).add(r["worker"])
    assert all(len(w) == 1 and not w & {"main"} for w in workers.values()), workers  # one worker per model
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert (run_dir / "report.md").exists() and (run_dir / "report.html").exists()
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert all(json.loads(line)["claim"] for line in lines)


def test_malformed_prompts_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "no text field"}\n')
    proc, _ = run_pytest("claims/", "--collect-only", "--prompts", str(bad), report_dir=tmp_path / "r")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    err = proc.stderr + proc.stdout
    assert "p.jsonl" in err and ":2" in err


def test_empty_prompt_in_txt_corpus_is_skipped_but_blank_jsonl_text_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"text": "   "}\n')
    proc, _ = run_pytest("claims/", "--collect-only", "--prompts", str(bad), report_dir=tmp_path / "r")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert "text" in proc.stderr + proc.stdout


def test_xdist_scope_is_the_target() -> None:
    pytest.importorskip("xdist")
    from lmfacts.xdist_scheduling import target_scope

    a = target_scope("claims/test_rn_norm_growth.py::test_rn1_exponential_growth[RN-1-smollm2-135m-cpu]")
    b = target_scope("claims/test_bf_distributions.py::test_bf1_gaussian_with_outliers[BF-1-smollm2-135m-cpu]")
    c = target_scope("claims/test_rn_norm_growth.py::test_rn1_per_prompt_growth[RN-1p-smollm2-135m-cpu]@x")
    d = target_scope("claims/test_rn_norm_growth.py::test_rn1_exponential_growth[RN-1-minilm-l6-cpu]")
    assert a == b == c == "target:smollm2-135m-cpu" and d == "target:minilm-l6-cpu"
    assert target_scope("tests/test_x.py::test_y") == "tests/test_x.py"


def test_randomised_profile_records_a_seed_that_replays(tmp_path: Path) -> None:
    base = ["claims/", "-k", "RN-8", "--model", "tiny-gpt2", "-q", "--hypothesis-profile", "nightly"]
    proc, _ = run_pytest(*base, report_dir=tmp_path / "a", env={"CI": ""})
    assert proc.returncode == 0, proc.stdout[-2000:]
    first = load_report(tmp_path / "a")
    seed = first["run"]["hypothesis"]["seed"]
    assert seed is not None and str(seed).isdigit()
    proc, _ = run_pytest(*base, "--hypothesis-seed", str(seed), report_dir=tmp_path / "b", env={"CI": ""})
    again = load_report(tmp_path / "b")
    assert str(again["run"]["hypothesis"]["seed"]) == str(seed)
    assert again["results"][0]["measured"] == first["results"][0]["measured"]
    proc, _ = run_pytest(*base[:-2], "--hypothesis-profile", "ci", report_dir=tmp_path / "c")
    assert load_report(tmp_path / "c")["run"]["hypothesis"]["seed"] is None  # derandomised: no seed needed


def test_every_claim_docstring_states_statistic_window_and_source() -> None:
    import importlib
    import inspect

    from lmfacts.claims import CLAIMS

    for module in ("claims.test_rn_norm_growth", "claims.test_bf_distributions", "claims.test_rs_basis"):
        importlib.import_module(module)
    assert len(CLAIMS) >= 24
    for claim_id, spec in CLAIMS.items():
        module, name = spec.function.rsplit(".", 1)
        doc = inspect.getdoc(getattr(importlib.import_module(module), name)) or ""
        assert doc.startswith(claim_id), claim_id
        assert "statistic" in doc.lower(), claim_id
        assert "window" in doc.lower(), claim_id
        assert f"Source: {spec.source}" in doc, claim_id


def test_families_are_markers_that_select_exactly(tmp_path: Path) -> None:
    # -k "MA-" also matches "tiny-gemma-cpu" inside every test id of that model; -m "MA" does not
    args = ("claims/", "--model", "tiny-gemma", "--model", "tiny-llama", "--collect-only", "-q",
            "-W", "error::pytest.PytestUnknownMarkWarning")
    proc, _ = run_pytest(*args, "-m", "MA or AS or LL", report_dir=tmp_path / "m")
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(ids) == 16 and all(re.search(r"\[(MA|AS|LL)-\d", i) for i in ids), ids
    proc, _ = run_pytest(*args, "-k", "MA- or AS- or LL-", report_dir=tmp_path / "k")
    keyword_ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert len(keyword_ids) > len(ids)  # the substring match the marker avoids


def test_a_revision_that_does_not_apply_is_said(tmp_path: Path) -> None:
    proc, _ = run_pytest("claims/", "--model", "tiny-gpt2", "--revision", "step1000", "-k", "RN-8", "--collect-only",
                         report_dir=tmp_path / "r")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "--revision applies to hub models only; tiny-gpt2 runs once, without a revision" in proc.stdout
