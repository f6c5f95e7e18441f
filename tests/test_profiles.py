"""Tests for lmfacts's Hypothesis profiles: selection precedence and profile contents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from lmfacts.profiles import (
    PROFILE_ALIASES,
    describe_database,
    load_profile,
    register_profiles,
    resolve_profile_name,
    select_profile,
)


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
        "max_examples": 8,
        "derandomize": True,
        "deadline": None,
        "database": None,
        "print_blob": True,
        "seed": None,
    }
    assert settings.get_current_profile_name() == "lmfacts-ci"
    assert settings.default.database is None
    assert settings.default.derandomize is True


def test_dev_profile_is_fast_and_keeps_a_database() -> None:
    info = load_profile("lmfacts-dev")
    assert info["max_examples"] == 10
    assert info["deadline"] is None
    assert info["derandomize"] is False
    assert info["database"] is not None


def test_nightly_profile_is_randomised_with_directory_database() -> None:
    info = load_profile("nightly")
    assert info["max_examples"] >= 100
    assert info["derandomize"] is False
    assert info["deadline"] is None
    assert info["database"] is not None and info["database"].endswith("examples")
    assert ".hypothesis" in info["database"]


def test_profiles_do_not_inherit_from_the_loaded_profile() -> None:
    # Loading ci (derandomized, no database) first must not leak into nightly or dev.
    load_profile("ci")
    register_profiles()
    nightly = load_profile("nightly")
    assert nightly["derandomize"] is False
    assert nightly["database"] is not None
    settings.load_profile("ci")  # Hypothesis's own built-in "ci" (what CI=1 auto-loads)
    assert load_profile("dev")["max_examples"] == 10


@pytest.mark.parametrize("name", ["dev", "ci", "nightly"])
def test_no_health_check_is_suppressed(name: str) -> None:
    load_profile(name)
    assert tuple(settings.default.suppress_health_check) == ()


def test_seed_is_reported() -> None:
    assert load_profile("nightly", seed=1234)["seed"] == 1234
    assert load_profile("dev", seed="abc")["seed"] == "abc"


def test_load_profile_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="valid profiles"):
        load_profile("default")


def test_describe_database() -> None:
    from hypothesis.database import DirectoryBasedExampleDatabase, InMemoryExampleDatabase

    assert describe_database(None) is None
    assert describe_database(DirectoryBasedExampleDatabase("/tmp/x")) == "/tmp/x"
    assert "InMemory" in str(describe_database(InMemoryExampleDatabase()))
