"""``claims show`` / ``claims list`` on a user's own claims (``--claims PATH``): the README's example claim in
a project of its own is shown with its parameters, premises and the user's expectation entries, as a
catalogue claim is; bad ``--claims`` paths are usage errors (exit 2) naming what to fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.test_user_claims import USER_EXPECTATIONS, _env, readme_example


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m lmfacts ARGS`` run from the user's project (a fresh interpreter: the registry is global)."""
    return subprocess.run([sys.executable, "-m", "lmfacts", *args], cwd=project, env=_env(PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "myproject"
    (root / "expectations").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "tests" / "test_my_claims.py").write_text(readme_example(), encoding="utf-8")
    (root / "expectations" / "mine.toml").write_text(USER_EXPECTATIONS, encoding="utf-8")
    return root


def test_show_a_user_claim_with_its_module_and_expectations(project: Path) -> None:
    proc = cli(project, "claims", "show", "XX-1", "--claims", "tests", "--model", "tiny-gpt2",
               "--expectations", "expectations", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    m = d["measurement"]
    assert m["file"].endswith("tests/test_my_claims.py") and m["function"] == "test_xx1_what_holds"
    assert [p["name"] for p in d["params"]] == ["min_share"]
    assert d["model"]["resolved"]["min_share"]["value"] == 0.05
    assert "mine.toml#0 (published: our lab notebook, 2026-11)" in d["model"]["resolved"]["min_share"]["origin"]
    listed = cli(project, "claims", "list", "--claims", "tests/test_my_claims.py", "--json")
    ids = [row["id"] for row in json.loads(listed.stdout)]
    assert listed.returncode == 0 and ids[-1] == "XX-1" and "RN-1" in ids


def test_unknown_id_points_to_claims_option(project: Path) -> None:
    proc = cli(project, "claims", "show", "XX-1")
    assert proc.returncode == 2 and "--claims PATH" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("body, needle", [
    ("", "registers no claim"),
    ("import not_a_module_anywhere\n", "raised ModuleNotFoundError"),
    ("from lmfacts.claims import claim\n\n@claim('RN-1', title='t', source='s')\ndef test_mine(ctx):\n    pass\n",
     "RN-1 is registered twice"),
])
def test_bad_claim_modules_are_usage_errors(project: Path, body: str, needle: str) -> None:
    (project / "tests" / "test_my_claims.py").write_text(body, encoding="utf-8")
    proc = cli(project, "claims", "show", "RN-1", "--claims", "tests/test_my_claims.py")
    assert proc.returncode == 2, proc.stdout[-500:] + proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    missing = cli(project, "claims", "show", "RN-1", "--claims", "nowhere/")
    assert missing.returncode == 2 and "--claims nowhere/: no such file or directory" in missing.stderr


def test_show_for_an_uncached_hub_model_answers_and_says_what_it_could_not_read(tmp_path: Path) -> None:
    """exit 0 (the claim and the by-name entries are answered; whether the hub has the model is unknown
    offline), with a note on stderr that the configuration was not readable."""
    proc = cli(tmp_path, "claims", "show", "RN-1", "--model", "no-such/model")
    assert proc.returncode == 0, proc.stderr
    assert "RN-1: residual norm grows exponentially" in proc.stdout
    assert "lmfacts: note: the configuration of 'no-such/model' is not readable here" in proc.stderr
    assert "not in the local Hugging Face cache" in proc.stderr
