"""lmfacts's Hypothesis profiles: selection, contents, what run.json records, replays of real claim runs."""

from __future__ import annotations

import html
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import core, given, settings
from hypothesis import strategies as st

from lmfacts.profiles import (
    PROFILE_ALIASES,
    describe_database,
    load_profile,
    register_profiles,
    replay_options,
    resolve_profile_name,
    select_profile,
)
from lmfacts.report.replay import replay_command


@pytest.fixture(autouse=True)
def _restore_profile() -> Iterator[None]:
    """Loading a profile changes Hypothesis's global default; put the previous one back."""
    previous = settings.get_current_profile_name()
    yield
    settings.load_profile(previous)


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        (None, {}, "lmfacts-dev"),
        ("", {}, "lmfacts-dev"),
        (None, {"CI": "true"}, "lmfacts-ci"),
        (None, {"CI": "1"}, "lmfacts-ci"),
        (None, {"CI": "false"}, "lmfacts-dev"),
        (None, {"CI": "0"}, "lmfacts-dev"),
        (None, {"CI": ""}, "lmfacts-dev"),
        (None, {"LMFACTS_HYPOTHESIS_PROFILE": "nightly", "CI": "true"}, "lmfacts-nightly"),
        (None, {"LMFACTS_HYPOTHESIS_PROFILE": "", "CI": "yes"}, "lmfacts-ci"),
        ("dev", {"LMFACTS_HYPOTHESIS_PROFILE": "nightly", "CI": "true"}, "lmfacts-dev"),
        ("lmfacts-nightly", {"CI": "true"}, "lmfacts-nightly"),
        ("ci", {}, "lmfacts-ci"),
        (None, {"LMFACTS_HYPOTHESIS_PROFILE": "lmfacts-ci"}, "lmfacts-ci"),
    ],
)
def test_select_profile_precedence(cli: str | None, env: dict[str, str], expected: str) -> None:
    assert select_profile(cli, env) == expected


@pytest.mark.parametrize(
    ("cli", "env"),
    [("default", {}), (None, {"LMFACTS_HYPOTHESIS_PROFILE": "fast"}), ("CI", {})],
)
def test_unknown_profile_lists_valid_names(cli: str | None, env: dict[str, str]) -> None:
    with pytest.raises(ValueError) as info:
        select_profile(cli, env)
    message = str(info.value)
    assert "unknown lmfacts Hypothesis profile" in message
    for short, full in PROFILE_ALIASES.items():
        assert short in message and full in message


def test_cli_wins_even_if_env_is_invalid() -> None:
    assert select_profile("nightly", {"LMFACTS_HYPOTHESIS_PROFILE": "bogus"}) == "lmfacts-nightly"


def test_resolve_profile_name() -> None:
    assert resolve_profile_name("dev") == "lmfacts-dev"
    assert resolve_profile_name(" nightly ") == "lmfacts-nightly"
    assert resolve_profile_name("lmfacts-ci") == "lmfacts-ci"
    with pytest.raises(ValueError):
        resolve_profile_name("ci-lmfacts")


def test_ci_profile_is_derandomized_without_database() -> None:
    info = load_profile("ci")
    assert info == {
        "name": "lmfacts-ci",
        "max_examples": 10,
        "derandomize": True,
        "deadline": None,
        "database": None,
        "print_blob": True,
        "seed": None,
        "examples_from": "derandomized: each test's examples are fixed by its source code and the corpus; "
                         "no seed used",
        "replay_args": ["--hypothesis-profile", "ci"],
    }
    assert settings.get_current_profile_name() == "lmfacts-ci"
    assert settings.default.database is None
    assert settings.default.derandomize is True


def test_default_profile_is_deterministic_like_ci() -> None:
    """Item 6: a run with no profile option draws the same examples on every run and machine."""
    assert select_profile(None, {}) == "lmfacts-dev"
    dev = load_profile("dev")
    assert dev["derandomize"] is True and dev["database"] is None
    assert settings.default.database is None and settings.default.derandomize is True
    ci = load_profile("ci")
    # CI=true changes nothing that decides the examples: a CI run and a local run agree.
    same = ("max_examples", "derandomize", "deadline", "database", "seed", "examples_from")
    assert {k: dev[k] for k in same} == {k: ci[k] for k in same}


def test_nightly_profile_is_randomised_and_replays_from_its_seed_alone() -> None:
    info = load_profile("nightly", seed="1234")
    assert info["max_examples"] >= 100
    assert info["derandomize"] is False
    assert info["deadline"] is None
    assert info["database"] is None  # a forced seed disables Hypothesis's database anyway
    assert info["seed"] == "1234"
    assert info["examples_from"].startswith("seed 1234")
    assert info["replay_args"] == ["--hypothesis-profile", "nightly", "--hypothesis-seed", "1234"]


def test_a_seed_given_to_a_derandomized_profile_is_recorded_as_ignored() -> None:
    """Item 5: under ci, --hypothesis-seed 5 and 6 run the same examples; run.json must not claim the seed."""
    five, six = load_profile("ci", seed="5"), load_profile("ci", seed="6")
    assert five["seed"] is None and six["seed"] is None
    assert five["seed_ignored"] == "5" and six["seed_ignored"] == "6"
    assert five["examples_from"].startswith("derandomized") and "--hypothesis-seed 5 ignored" in five["examples_from"]
    assert five["replay_args"] == six["replay_args"] == ["--hypothesis-profile", "ci"]


def test_load_profile_never_reads_hypothesis_global_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the seed an enclosing pytest session forced on Hypothesis must not reach the record.

    ``pytest tests/`` with a randomised profile drew a seed, which Hypothesis's plugin stores in
    ``hypothesis.core.global_force_seed``; load_profile read it back as this profile's seed.
    """
    monkeypatch.setattr(core, "global_force_seed", 3990029508)
    assert load_profile("ci")["seed"] is None
    assert load_profile("dev")["seed"] is None
    nightly = load_profile("nightly")
    assert nightly["seed"] is None and nightly["replay_args"] == []
    assert nightly["examples_from"].startswith("random")


def _draws(profile: str, force_seed: int | None, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The examples Hypothesis draws for one fixed test under ``profile`` with ``--hypothesis-seed force_seed``."""
    monkeypatch.setattr(core, "global_force_seed", force_seed)
    load_profile(profile)
    seen: list[int] = []

    @given(st.integers(0, 2**64))
    def prop(x: int) -> None:
        seen.append(x)

    prop()
    return seen


def test_what_run_json_says_drove_the_examples_is_what_hypothesis_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded statements hold for the installed Hypothesis: derandomized ignores the seed,
    nightly follows it."""
    ci5, ci6, dev = (_draws("ci", 5, monkeypatch), _draws("ci", 6, monkeypatch), _draws("dev", None, monkeypatch))
    assert ci5 == ci6 == dev and len(set(ci5)) > 3
    n5, n5_again, n6 = (_draws("nightly", 5, monkeypatch), _draws("nightly", 5, monkeypatch),
                        _draws("nightly", 6, monkeypatch))
    assert n5 == n5_again and n5 != n6


def test_profiles_do_not_inherit_from_the_loaded_profile() -> None:
    # Loading ci (derandomized, no database) first must not leak into nightly.
    load_profile("ci")
    register_profiles()
    nightly = load_profile("nightly")
    assert nightly["derandomize"] is False
    assert nightly["max_examples"] >= 100
    settings.load_profile("ci")  # Hypothesis's own built-in "ci" (what CI=1 auto-loads)
    assert load_profile("dev")["max_examples"] == 10


@pytest.mark.parametrize("name", ["dev", "ci", "nightly"])
def test_no_health_check_is_suppressed(name: str) -> None:
    load_profile(name)
    assert tuple(settings.default.suppress_health_check) == ()


def test_seed_is_reported() -> None:
    assert load_profile("nightly", seed=1234)["seed"] == 1234
    assert load_profile("dev", seed="abc")["seed_ignored"] == "abc"


@pytest.mark.parametrize(
    ("args", "paths", "kept"),
    [
        (["claims/", "--model", "gpt2", "-q"], ["claims/"], ["--model", "gpt2", "-q"]),
        (["claims/", "--hypothesis-profile", "nightly", "--hypothesis-seed", "7", "-n", "2", "--dist", "loadgroup",
          "--model", "x"], ["claims/"], ["--model", "x"]),
        (["--hypothesis-seed=7", "--hypothesis-profile=nightly", "-n2", "--numprocesses=4", "a.py", "b.py",
          "-k", "RN-1p"], ["a.py", "b.py"], ["-k", "RN-1p"]),
        (["--prompts", "p.txt", "--model", "claims/"], ["claims/"], ["--prompts", "p.txt", "--model"]),
    ],
)
def test_replay_options_drop_test_paths_seed_profile_and_workers(args: list[str], paths: list[str],
                                                                 kept: list[str]) -> None:
    assert replay_options(args, paths) == kept


def test_replay_command_of_a_record() -> None:
    run = {"hypothesis": {"replay": "pytest --model tiny-gpt2 --hypothesis-profile nightly --hypothesis-seed 5",
                          "replay_rootdir": "."}}
    record = {"nodeid": "claims/test_rn.py::test_rn1p[RN-1p-tiny-gpt2-cpu]"}
    assert replay_command(run, record) == (
        "pytest --model tiny-gpt2 --hypothesis-profile nightly --hypothesis-seed 5 "
        "'claims/test_rn.py::test_rn1p[RN-1p-tiny-gpt2-cpu]'")
    run["hypothesis"]["replay_rootdir"] = "../lmfacts"
    assert replay_command(run, record).endswith(" '../lmfacts/claims/test_rn.py::test_rn1p[RN-1p-tiny-gpt2-cpu]'")
    assert replay_command({"hypothesis": {"seed": None}}, record) is None
    assert replay_command(run, {"nodeid": None}) is None
    # an installed catalogue (--pyargs lmfacts.catalogue): the nodeid is relative to the package, the record
    # names the file; the replay names it too, whatever the rootdir
    pyargs = {"nodeid": "test_rn.py::test_rn1p[RN-1p-tiny-gpt2-cpu]",
              "test_file": "/venv/site-packages/lmfacts/catalogue/test_rn.py"}
    assert replay_command(run, pyargs).endswith(
        " '/venv/site-packages/lmfacts/catalogue/test_rn.py::test_rn1p[RN-1p-tiny-gpt2-cpu]'")


def test_witness_is_rendered_with_its_replay_command() -> None:
    from lmfacts.report.html import render_html
    from lmfacts.report.markdown import render_markdown

    command = "pytest --model tiny-gpt2 --hypothesis-profile nightly --hypothesis-seed 5"
    record = {"claim": "RN-1p", "title": "t", "model": "tiny-gpt2", "device": "cpu", "outcome": "failed",
              "nodeid": "claims/test_rn.py::test_rn1p[RN-1p-tiny-gpt2-cpu]", "source": "RN §Summary",
              "witness": {"text": "Hello <b>", "tokens": None, "value": 0.9}, "figures": []}
    report = {"run": {"id": "r", "hypothesis": {"name": "lmfacts-nightly", "seed": "5", "derandomize": False,
                                                "replay": command, "replay_rootdir": "."}},
              "results": [record], "summary": {"counts": {"failed": 1}}, "models": []}
    expected = f"{command} 'claims/test_rn.py::test_rn1p[RN-1p-tiny-gpt2-cpu]'"
    assert html.escape(expected, quote=True) in render_html(report)
    md = render_markdown(report)
    assert f"`{expected}`" in md and '"Hello &lt;b&gt;"' in md and "(seed 5)" in md


def test_load_profile_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="valid profiles"):
        load_profile("default")


def test_describe_database() -> None:
    from hypothesis.database import DirectoryBasedExampleDatabase, InMemoryExampleDatabase

    assert describe_database(None) is None
    assert describe_database(DirectoryBasedExampleDatabase("/tmp/x")) == "/tmp/x"
    assert "InMemory" in str(describe_database(InMemoryExampleDatabase()))
# -- real claim runs (subprocesses): what a user sees -------------------------------------------

PLANTED = '''
import json
import os

from hypothesis import given, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from lmfacts.claims import claim
from lmfacts.prompts.strategies import run_prompts


def _seen(prompt):
    with open(os.environ["SEEN_FILE"], "a") as f:
        f.write(json.dumps(prompt) + "\\n")


@claim("ZZ-2", title="planted per-prompt claim (loads no model)", source="test", processing="raw")
def test_zz2_examples(target):
    """ZZ-2: planted per-prompt claim; records every example it is given."""

    @given(prompt=run_prompts())
    def prop(prompt):
        _seen(prompt)
        assert not os.environ.get("PLANTED_FAIL"), "planted failure"

    if os.environ.get("PLANTED_DB"):  # an earlier, database-keeping run (an "old machine")
        prop = settings(database=DirectoryBasedExampleDatabase(os.environ["PLANTED_DB"]), derandomize=False)(prop)
    prop()


@claim("ZZ-3", title="planted per-prompt claim that fails on long prompts", source="test", processing="raw")
def test_zz3_witness(ctx):
    """ZZ-3: planted per-prompt claim; fails on every prompt of 40 characters or more."""

    @given(prompt=run_prompts())
    def prop(prompt):
        _seen(prompt)
        ctx.observe(len(prompt))
        ctx.witness(prompt, None, len(prompt))
        ctx.check(len(prompt) < 40, "planted failure: a prompt of 40 characters or more", length=len(prompt))

    prop()
'''


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("planted")
    (root / "claims").mkdir()
    (root / "claims" / "test_zz_planted.py").write_text(PLANTED)
    return root


class Run:
    """One ``pytest`` subprocess on the planted claims, with CI unset unless ``env`` sets it.

    Run from the planted directory, which is its rootdir, as ``pytest claims/`` runs from a checkout.
    """

    def __init__(self, planted: Path, name: str, *args: str, env: dict[str, str] | None = None,
                 storage: str = "fresh", argv: list[str] | None = None) -> None:
        self.dir = planted / name
        self.dir.mkdir()
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("CI", "LMFACTS_HYPOTHESIS_PROFILE", "PYTEST_XDIST_WORKER")}
        full_env.update(SEEN_FILE=str(self.dir / "seen.jsonl"), LMFACTS_EXPECTATIONS_DIR=str(planted),
                        HYPOTHESIS_STORAGE_DIRECTORY=str(planted / storage), **(env or {}))
        cmd = argv or ["claims", "--rootdir", str(planted), "--model", "tiny-gpt2", *args]
        self.proc = subprocess.run([sys.executable, "-m", "pytest", *cmd, "--report-dir", str(self.dir / "reports"),
                                    "-p", "no:cacheprovider", "-q"],
                                   cwd=planted, env=full_env, capture_output=True, text=True, timeout=300)
        self.out = self.proc.stdout[-3000:] + self.proc.stderr[-3000:]

    @property
    def seen(self) -> list[str]:
        return [json.loads(line) for line in (self.dir / "seen.jsonl").read_text().splitlines()]

    @property
    def report(self) -> dict[str, Any]:
        (run_dir,) = (self.dir / "reports").iterdir()
        return json.loads((run_dir / "report.json").read_text())

    @property
    def hypothesis(self) -> dict[str, Any]:
        return self.report["run"]["hypothesis"]


def test_default_runs_draw_identical_examples_on_a_fresh_and_an_old_machine(planted: Path) -> None:
    """Item 6: no profile option → the same examples every run, whatever .hypothesis/ holds; CI=true and
    --hypothesis-seed change nothing, and run.json says so (item 5)."""
    # An earlier run that kept a database of failing examples in the storage directory ("old").
    old = Run(planted, "old", "-k", "ZZ-2", "--hypothesis-profile", "ci", storage="old",
              env={"PLANTED_FAIL": "1", "PLANTED_DB": str(planted / "old" / "examples")})
    assert old.proc.returncode == 1, old.out
    assert any((planted / "old" / "examples").rglob("*")), "the database-keeping run saved no example"

    default_old = Run(planted, "default-old", "-k", "ZZ-2", storage="old")
    assert default_old.proc.returncode == 0, default_old.out
    hyp = default_old.hypothesis
    assert hyp["name"] == "lmfacts-dev" and hyp["derandomize"] is True and hyp["database"] is None
    assert hyp["seed"] is None and hyp["examples_from"].startswith("derandomized")
    assert len(default_old.seen) == hyp["max_examples"]

    ci6 = Run(planted, "ci-6", "-k", "ZZ-2", "--hypothesis-seed", "6", env={"CI": "true"})
    ci5 = Run(planted, "ci-5", "-k", "ZZ-2", "--hypothesis-profile", "ci", "--hypothesis-seed", "5")
    assert ci6.proc.returncode == ci5.proc.returncode == 0, ci6.out + ci5.out
    assert ci6.seen == ci5.seen == default_old.seen  # an old database is never read: same as a fresh machine
    for run, seed in ((ci6, "6"), (ci5, "5")):
        assert run.hypothesis["name"] == "lmfacts-ci"
        assert run.hypothesis["seed"] is None and run.hypothesis["seed_ignored"] == seed
        assert f"--hypothesis-seed {seed} ignored" in run.hypothesis["examples_from"]


def test_nightly_is_randomised_and_its_seed_replays(planted: Path) -> None:
    a = Run(planted, "nightly-5", "-k", "ZZ-2", "--hypothesis-profile", "nightly", "--hypothesis-seed", "5")
    again = Run(planted, "nightly-5-again", "-k", "ZZ-2", "--hypothesis-profile", "nightly", "--hypothesis-seed", "5",
                storage="old-nightly")
    b = Run(planted, "nightly-6", "-k", "ZZ-2", "--hypothesis-profile", "nightly", "--hypothesis-seed", "6")
    assert a.proc.returncode == again.proc.returncode == b.proc.returncode == 0, a.out + b.out
    assert a.seen == again.seen and a.seen != b.seen
    assert a.hypothesis["seed"] == "5" and a.hypothesis["derandomize"] is False
    assert a.hypothesis["replay_args"] == ["--hypothesis-profile", "nightly", "--hypothesis-seed", "5"]


def test_a_nightly_counterexample_is_reported_with_a_replay_command_that_reproduces_it(planted: Path) -> None:
    found = Run(planted, "found", "-k", "ZZ-3", "--hypothesis-profile", "nightly")  # the plugin draws the seed
    assert found.proc.returncode == 1, found.out
    seed = found.hypothesis["seed"]
    assert seed is not None and str(seed).isdigit()
    (record,) = found.report["results"]
    assert record["outcome"] == "failed" and len(record["witness"]["text"]) >= 40
    command = replay_command(found.report["run"], record)
    assert command is not None and f"--hypothesis-profile nightly --hypothesis-seed {seed} " in command
    assert command.endswith(shlex.quote(record["nodeid"]))
    (run_dir,) = (found.dir / "reports").iterdir()
    assert html.escape(command, quote=True) in (run_dir / "report.html").read_text()
    assert command in (run_dir / "report.md").read_text()

    argv = shlex.split(command)
    assert argv[:3] == [sys.executable, "-m", "pytest"]  # runnable as printed, venv activated or not
    replayed = Run(planted, "replayed", argv=argv[3:], storage="elsewhere")
    assert replayed.proc.returncode == 1, replayed.out
    (again,) = replayed.report["results"]
    assert again["nodeid"] == record["nodeid"] and again["outcome"] == "failed"
    assert again["witness"] == record["witness"]
    assert replayed.seen == found.seen  # every example, shrinking included, in the same order
