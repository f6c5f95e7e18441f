"""Users' own claims: the README's "Writing a claim" example, run from a project of its own.

The example is taken from README.md as written (so the README cannot drift from what works), put into a
temporary project directory next to the user's own expectations file, and run there on tiny random
models with ``--expectations``: the claim is parametrised over the models, its records carry the user's
parameter values with the user's file as their origin, and a baseline recorded from the run guards it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lmfacts.expectations import ExpectationFileError, ModelFacts, load_all, resolve, user_files
from tests.helpers import REPO

USER_EXPECTATIONS = """\
schema = 1

[[expectation]]
claim = "XX-1"
kind = "published"
source = "our lab notebook, 2026-11"
match = { models = ["tiny-gpt2"] }
params = { min_share = 0.05 }

[[expectation]]
claim = "XX-1"
kind = "published"
source = "a floor no share can reach"
match = { models = ["tiny-llama"] }
params = { min_share = 1.01 }
"""


def readme_example() -> str:
    """The first ``python`` block of README.md's "Writing a claim" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Writing a claim", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md: no ```python block under '## Writing a claim'"
    return match.group(1)


def _env(**extra: str) -> dict[str, str]:
    drop = ("PYTHONPATH", "LMFACTS_EXPECTATIONS_DIR", "LMFACTS_BASELINES_DIR", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")
    return dict({k: v for k, v in os.environ.items() if k not in drop}, **extra)


def _pytest(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"], cwd=project,
                          env=env or _env(), capture_output=True, text=True, timeout=600)


def _records(report_dir: Path) -> dict[str, dict]:
    (run_dir,) = [p for p in report_dir.iterdir() if p.is_dir()]
    lines = (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["model"]: r for r in map(json.loads, filter(str.strip, lines))}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A user's project: the README's claim in its own test module, its expectations in its own directory."""
    root = tmp_path / "myproject"
    (root / "expectations").mkdir(parents=True)
    (root / "test_my_claims.py").write_text(readme_example(), encoding="utf-8")
    (root / "expectations" / "mine.toml").write_text(USER_EXPECTATIONS, encoding="utf-8")
    return root


def test_readme_claim_runs_in_a_user_project_with_its_own_expectations_and_baseline(project: Path) -> None:
    proc = _pytest(project, "test_my_claims.py", "--model", "tiny-gpt2", "--model", "tiny-llama",
                   "--expectations", "expectations/mine.toml", "--max-prompts", "24", "--report-dir", "reports")
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out[-4000:]  # tiny-llama: the unreachable floor
    assert "test_xx1_what_holds[XX-1-tiny-gpt2-cpu]" in out and "test_xx1_what_holds[XX-1-tiny-llama-cpu]" in out
    records = _records(project / "reports")
    assert set(records) == {"tiny-gpt2", "tiny-llama"}
    gpt2, llama = records["tiny-gpt2"], records["tiny-llama"]
    assert gpt2["claim"] == llama["claim"] == "XX-1" and gpt2["headline"] == ["share"]
    share = gpt2["measured"]["share"]
    assert 0.05 <= share <= 1.0, gpt2
    assert gpt2["outcome"] == "passed", gpt2
    assert gpt2["params"]["min_share"] == {"value": 0.05, "unit": "share",
                                           "origin": "expectations/mine.toml#0 (published: our lab notebook, 2026-11)"}
    # the user's value decided the verdict: the claim default (0.1) would pass any share this model has
    assert llama["outcome"] == "failed" and llama["measured"]["share"] < 1.01, llama
    assert llama["reason"] == f"share {llama['measured']['share']:.3f} < 1.01", llama["reason"]
    assert llama["params"]["min_share"]["origin"].startswith("expectations/mine.toml#1 (published: ")

    # baseline support: record the user's claim from this run, plant a shift, the next run flags it by name
    run_dir = next(p for p in (project / "reports").iterdir() if p.is_dir())
    rec = subprocess.run([sys.executable, "-m", "lmfacts", "baseline", "record", str(run_dir), "--model", "tiny-gpt2",
                          "--out", "baselines/tiny-gpt2.toml"], cwd=project, env=_env(), capture_output=True,
                         text=True, timeout=120)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    baseline = (project / "baselines" / "tiny-gpt2.toml").read_text(encoding="utf-8")
    assert 'id = "XX-1"' in baseline and 'key = "share"' in baseline and f"value = {share!r}" in baseline
    planted = share - 0.1
    (project / "baselines" / "tiny-gpt2.toml").write_text(
        baseline.replace(f"value = {share!r}", f"value = {planted!r}"), encoding="utf-8")
    proc = _pytest(project, "test_my_claims.py", "--model", "tiny-gpt2", "--expectations", "expectations",
                   "--max-prompts", "24", "--report-dir", "reports2", env=_env(LMFACTS_BASELINES_DIR="baselines"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out[-4000:]
    assert "XX-1 on tiny-gpt2" in out and "left its baseline tolerance" in out, out[-4000:]
    again = _records(project / "reports2")["tiny-gpt2"]
    assert again["measured"]["share"] == share  # same model, same prompts, same number: only the baseline moved
    assert again["outcome"] == "failed" and again["baseline"]["status"] == "compared", again["baseline"]
    assert again["baseline"]["raw_outcome"] == "passed"  # the claim's own predicate still holds
    assert again["baseline"]["values"]["share"] == {"recorded": planted, "tol": again["baseline"]["tolerance"]["share"],
                                                    "today": share, "within": False}
    assert again["params"]["min_share"]["origin"].startswith("expectations/mine.toml#0")  # a directory works too


@pytest.mark.parametrize("content, needles", [
    ('schema = 1\n[[expectation]]\nclaim = "XX-1"\nsource = "s"\nmatch = { default = true }\n'
     'params = { min_shar = 0.2 }\n',
     ["expectation[0] (claim XX-1).params.min_shar", "unknown parameter 'min_shar'", "valid keys: min_share"]),
    ('schema = 1\n[[expectation]]\nclaim = "XX-1"\nsource = "s"\nmatch = { default = true }\n'
     'params = { min_share = "high" }\n', ["expectation[0] (claim XX-1).params.min_share", "is not a float"]),
    ('schema = 1\n[[expectation]]\nclaim = "XX-1"\nmatch = { default = true }\n', ["expectation[0].source", "missing"]),
    ('schema = 1\n[[expectation]]\nclaim = "XX-2"\nsource = "s"\nmatch = { default = true }\n',
     ["expectation[0].claim", "unknown claim 'XX-2'"]),
    ("schema = 1\n[[expectation]\n", ["invalid TOML"]),
], ids=["unknown-param", "wrong-type", "no-source", "unknown-claim", "bad-toml"])
def test_a_malformed_user_expectation_file_is_a_usage_error_naming_it(project: Path, content: str,
                                                                     needles: list[str]) -> None:
    (project / "expectations" / "mine.toml").unlink()
    (project / "expectations" / "broken.toml").write_text(content, encoding="utf-8")
    proc = _pytest(project, "test_my_claims.py", "--model", "tiny-gpt2", "--expectations", "expectations",
                   "--report-dir", "reports")
    err = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, err[-3000:]
    assert str(project / "expectations" / "broken.toml") in err, err[-3000:]
    for needle in needles:
        assert needle in err, (needle, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    assert not (project / "reports").exists() or not any((project / "reports").rglob("results.jsonl"))


def test_a_bad_expectations_path_is_a_usage_error(project: Path) -> None:
    proc = _pytest(project, "test_my_claims.py", "--model", "tiny-gpt2", "--expectations", "expectations",
                   "--expectations", "nowhere.toml", "--report-dir", "reports")
    err = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, err[-3000:]
    assert "--expectations nowhere.toml: no such file or directory" in err and "Traceback" not in err, err[-3000:]


@pytest.mark.parametrize("arg, needle", [
    ("nowhere.toml", "--expectations nowhere.toml: no such file or directory"),
    ("test_my_claims.py", "--expectations test_my_claims.py: not a .toml file"),
    ("empty", "--expectations empty: the directory holds no *.toml file"),
])
def test_user_files_names_a_bad_path(project: Path, arg: str, needle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "empty").mkdir()
    monkeypatch.chdir(project)
    with pytest.raises(ExpectationFileError) as info:
        user_files(["expectations", arg])
    assert str(info.value) == needle


def test_user_files_reads_files_and_directories_once_each_in_order(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("b.toml", "a.toml", "notes.txt"):
        (tmp_path / "d" / name).write_text("schema = 1\n", encoding="utf-8")
    single = tmp_path / "single.toml"
    single.write_text("schema = 1\n", encoding="utf-8")
    got = user_files([single, tmp_path / "d", tmp_path / "d" / "a.toml"])
    assert [label for _, label in got] == [single.as_posix(), f"{tmp_path.as_posix()}/d/a.toml",
                                           f"{tmp_path.as_posix()}/d/b.toml"]
    assert [p for p, _ in got] == [single.resolve(), (tmp_path / "d" / "a.toml").resolve(),
                                   (tmp_path / "d" / "b.toml").resolve()]


def test_user_entries_come_after_the_built_in_ones_and_are_labelled_by_path(tmp_path: Path) -> None:
    user = tmp_path / "rn.toml"  # the same name as a built-in file: the origin still tells them apart
    user.write_text('schema = 1\n[[expectation]]\nclaim = "RN-1"\nsource = "mine"\nmatch = { models = ["m"] }\n',
                    encoding="utf-8")
    builtin = load_all()
    both = load_all(extra=[user])
    assert both[:len(builtin)] == builtin and len(both) == len(builtin) + 1
    assert both[-1].name == user.as_posix() and both[-1].file == str(user.resolve())
    assert builtin and all(e.name == Path(e.file).name for e in builtin)  # built-in origins: the bare file name
    with pytest.raises(ExpectationFileError, match="no such file"):
        load_all(extra=[tmp_path / "missing.toml"])


def test_a_user_entry_wins_over_a_built_in_entry_of_its_level_but_two_user_entries_conflict(tmp_path: Path) -> None:
    entry = ('[[expectation]]\nclaim = "RN-1"\nsource = "{src}"\nmatch = {{ models = ["m"] }}\n'
             'params = {{ rate = {rate}{more} }}\n')
    builtin_dir, user = tmp_path / "builtin", tmp_path / "mine.toml"
    builtin_dir.mkdir()
    (builtin_dir / "rn.toml").write_text("schema = 1\n" + entry.format(src="paper", rate=1.045, more=", rate_tol = 0.01")
                                         + '[[expectation]]\nclaim = "RN-1"\nsource = "all"\nmatch = { default = true }\n'
                                           'params = { rate_tol = 0.5 }\n', encoding="utf-8")
    user.write_text("schema = 1\n" + entry.format(src="our lab", rate=1.2, more=""), encoding="utf-8")
    facts = ModelFacts(names=("m",), architecture="A", is_encoder=False, normalization="RMS", quantized=False)
    got = resolve(load_all(builtin_dir, extra=[user]), "RN-1", facts)
    assert got.params == {"rate": 1.2, "rate_tol": 0.01}  # the user's rate; the built-in entry's rate_tol
    assert got.origins["rate"] == f"{user.as_posix()}#0 (default: our lab)"
    assert got.origins["rate_tol"] == "rn.toml#0 (default: paper)"
    assert got.origin == ["rn.toml#1", "rn.toml#0", f"{user.as_posix()}#0"] and got.source == "our lab"
    without = resolve(load_all(builtin_dir), "RN-1", facts)
    assert without.params == {"rate": 1.045, "rate_tol": 0.01}
    second = tmp_path / "second.toml"
    second.write_text("schema = 1\n" + entry.format(src="another", rate=1.3, more=""), encoding="utf-8")
    with pytest.raises(ExpectationFileError, match="both set RN-1 for m at the same level"):
        resolve(load_all(builtin_dir, extra=[user, second]), "RN-1", facts)
