"""Hypothesis settings profiles for lmfacts, registered and loaded explicitly.

Hypothesis auto-loads its own built-in ``"ci"`` profile when ``CI`` is set, which would silently
give lmfacts 100 examples per claim. lmfacts therefore registers its own, prefixed profiles
(``lmfacts-dev``, ``lmfacts-ci``, ``lmfacts-nightly``) and loads one explicitly; the short names
``dev``, ``ci`` and ``nightly`` are accepted wherever a profile is named.

Typical use from the pytest plugin (in a ``pytest_configure`` that runs after Hypothesis's own)::

    register_profiles()
    name = select_profile(config.getoption("hypothesis_profile"), os.environ)
    info = load_profile(name, seed=config.getoption("hypothesis_seed"))  # goes into the report

No health check is suppressed: prompt generation is cheap, and the slow part (the model forward)
is covered by ``deadline=None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import core, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

__all__ = [
    "CI_ENV_VAR",
    "DEFAULT_PROFILE",
    "PROFILE_ALIASES",
    "PROFILE_ENV_VAR",
    "describe_database",
    "load_profile",
    "register_profiles",
    "resolve_profile_name",
    "select_profile",
]

#: Environment variable naming the profile (short or full name).
PROFILE_ENV_VAR = "LMFACTS_HYPOTHESIS_PROFILE"
#: Environment variable that, when truthy, selects the ``ci`` profile.
CI_ENV_VAR = "CI"
#: Profile used when nothing selects another one.
DEFAULT_PROFILE = "lmfacts-dev"
#: Short name -> registered Hypothesis profile name.
PROFILE_ALIASES: dict[str, str] = {
    "dev": "lmfacts-dev",
    "ci": "lmfacts-ci",
    "nightly": "lmfacts-nightly",
}

_FALSY = frozenset({"", "0", "false", "no", "off", "n", "f"})

# Keyword arguments for settings.register_profile, one entry per profile.
_PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    # Fast local iteration; failures are still saved to the default example database so the
    # next run replays them first.
    "lmfacts-dev": {"max_examples": 10, "derandomize": False, "deadline": None},
    # Reproducible CI: same examples on every run, nothing read from or written to disk, and a
    # reproduction blob printed for every failure.
    "lmfacts-ci": {
        "max_examples": 8,
        "derandomize": True,
        "deadline": None,
        "database": None,
        "print_blob": True,
    },
    # Randomised exploration; counter-examples are kept in the default directory database
    # (.hypothesis/examples) so a nightly failure can be replayed locally.
    "lmfacts-nightly": {"max_examples": 100, "derandomize": False, "deadline": None, "print_blob": True},
}


def register_profiles() -> None:
    """Register the ``lmfacts-*`` Hypothesis profiles (idempotent; does not load any).

    Each profile derives from Hypothesis's built-in ``"default"`` profile, never from whatever
    profile is loaded at the time (which may be Hypothesis's auto-loaded ``"ci"``).
    """
    parent = settings.get_profile("default")
    for name, kwargs in _PROFILE_SETTINGS.items():
        settings.register_profile(name, parent=parent, **kwargs)


def _valid_names() -> str:
    short = ", ".join(PROFILE_ALIASES)
    full = ", ".join(PROFILE_ALIASES.values())
    return f"{short} (or {full})"


def resolve_profile_name(name: str) -> str:
    """Map a short or full lmfacts profile name to its registered name; ValueError otherwise."""
    key = name.strip()
    if key in PROFILE_ALIASES:
        return PROFILE_ALIASES[key]
    if key in PROFILE_ALIASES.values():
        return key
    raise ValueError(f"unknown lmfacts Hypothesis profile {name!r}; valid profiles: {_valid_names()}")


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in _FALSY


def select_profile(cli_value: str | None, env: Mapping[str, str]) -> str:
    """Choose the profile to load and return its registered (``lmfacts-*``) name.

    Precedence: the ``--hypothesis-profile`` value, then ``$LMFACTS_HYPOTHESIS_PROFILE``, then
    ``ci`` when ``$CI`` is truthy (not empty/0/false/no/off), else ``dev``. Empty values count as
    unset. An unknown name raises ValueError listing the valid ones.
    """
    if cli_value is not None and cli_value.strip():
        return resolve_profile_name(cli_value)
    from_env = env.get(PROFILE_ENV_VAR)
    if from_env is not None and from_env.strip():
        return resolve_profile_name(from_env)
    if _truthy(env.get(CI_ENV_VAR)):
        return PROFILE_ALIASES["ci"]
    return DEFAULT_PROFILE


def describe_database(database: ExampleDatabase | None) -> str | None:
    """Human-readable description of an example database for the report (None if disabled)."""
    if database is None:
        return None
    if isinstance(database, DirectoryBasedExampleDatabase):
        return str(database.path)
    return repr(database)


def _current_force_seed() -> int | str | None:
    """The seed given to Hypothesis's ``--hypothesis-seed``, if its pytest plugin set one."""
    return getattr(core, "global_force_seed", None)


def load_profile(name: str, seed: int | str | None = None) -> dict[str, Any]:
    """Register the lmfacts profiles, load ``name`` (short or full) and describe it.

    Returns ``{"name", "max_examples", "derandomize", "deadline", "database", "print_blob",
    "seed"}`` for the replication report. ``seed`` is the ``--hypothesis-seed`` value when the
    caller knows it; otherwise the seed Hypothesis's pytest plugin recorded (or None). A
    derandomized profile needs no seed: its examples are a function of each test alone.
    """
    full_name = resolve_profile_name(name)
    register_profiles()
    settings.load_profile(full_name)
    active = settings.get_profile(full_name)
    deadline = active.deadline
    return {
        "name": full_name,
        "max_examples": active.max_examples,
        "derandomize": active.derandomize,
        "deadline": None if deadline is None else deadline.total_seconds(),
        "database": describe_database(active.database),
        "print_blob": active.print_blob,
        "seed": seed if seed is not None else _current_force_seed(),
    }
