"""Hypothesis settings profiles for lmfacts, registered and loaded explicitly.

A run with no profile option gives the same examples, outcomes and numbers every time: the
default ``dev`` profile (and ``ci``, which ``CI=true`` selects and which has the same settings) is
derandomised and has no example database, so neither a seed nor a ``.hypothesis/`` directory left by
an earlier run changes what runs. Randomised exploration is ``nightly``: the plugin gives it a seed
(drawn unless ``--hypothesis-seed`` names one) and records it, and that seed alone replays the run.

Hypothesis auto-loads its own built-in ``"ci"`` profile when ``CI`` is set, which would silently
give lmfacts 100 examples per claim. lmfacts therefore registers its own, prefixed profiles
(``lmfacts-dev``, ``lmfacts-ci``, ``lmfacts-nightly``) and loads one explicitly; the short names
``dev``, ``ci`` and ``nightly`` are accepted wherever a profile is named.

Typical use from the pytest plugin (in a ``pytest_configure`` that runs after Hypothesis's own)::

    register_profiles()
    name = select_profile(config.getoption("hypothesis_profile"), os.environ)
    info = load_profile(name, seed=config.getoption("hypothesis_seed"))  # goes into the report

:func:`load_profile` describes the profile and the seed it is given, and nothing else: it never
reads Hypothesis's process-wide state (``hypothesis.core.global_force_seed``), which whatever
pytest session the process runs in may have set.

No health check is suppressed: prompt generation is cheap, and the slow part (the model forward)
is covered by ``deadline=None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

__all__ = [
    "CI_ENV_VAR",
    "DEFAULT_PROFILE",
    "PROFILE_ALIASES",
    "PROFILE_ENV_VAR",
    "describe_database",
    "examples_source",
    "load_profile",
    "register_profiles",
    "replay_args",
    "replay_options",
    "resolve_profile_name",
    "select_profile",
    "short_name",
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

# The same examples on every run, on any machine: Hypothesis seeds each test from a digest of its
# source, nothing is read from or written to an example database, and every failure prints a
# reproduction blob.
_DETERMINISTIC: dict[str, Any] = {
    "max_examples": 10,
    "derandomize": True,
    "deadline": None,
    "database": None,
    "print_blob": True,
}

# Keyword arguments for settings.register_profile, one entry per profile.
_PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    # The default: deterministic.
    "lmfacts-dev": dict(_DETERMINISTIC),
    # What CI=true selects: the same settings as the default, so a CI run and a local run of the
    # same model, corpus and lmfacts version see the same examples and give the same numbers.
    "lmfacts-ci": dict(_DETERMINISTIC),
    # Randomised exploration. The plugin forces a recorded seed (Hypothesis then uses no example
    # database anyway), so the seed alone replays a run: no database, on any machine.
    "lmfacts-nightly": {
        "max_examples": 100,
        "derandomize": False,
        "deadline": None,
        "database": None,
        "print_blob": True,
    },
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


def short_name(name: str) -> str:
    """The short name (``dev``, ``ci``, ``nightly``) of a short or full lmfacts profile name."""
    full = resolve_profile_name(name)
    return next(short for short, registered in PROFILE_ALIASES.items() if registered == full)


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in _FALSY


def select_profile(cli_value: str | None, env: Mapping[str, str]) -> str:
    """Choose the profile to load and return its registered (``lmfacts-*``) name.

    Precedence: the ``--hypothesis-profile`` value, then ``$LMFACTS_HYPOTHESIS_PROFILE``, then
    ``ci`` when ``$CI`` is truthy (not empty/0/false/no/off), else ``dev``. Empty values count as
    unset. An unknown name raises ValueError listing the valid ones. ``dev`` and ``ci`` have the
    same settings (both deterministic); only ``nightly`` is randomised.
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


def examples_source(derandomize: bool, seed: int | str | None, database: str | None) -> str:
    """In words, what decides the examples a run of this profile draws (recorded in ``run.json``).

    Mirrors Hypothesis's precedence: a derandomised profile seeds each test from a digest of its
    source and ignores ``--hypothesis-seed``; otherwise a forced seed decides (and Hypothesis then
    reads no example database); otherwise a fresh random seed plus the database's saved examples.
    """
    if derandomize:
        ignored = f"; --hypothesis-seed {seed} ignored" if seed is not None else "; no seed used"
        return f"derandomized: each test's examples are fixed by its source code and the corpus{ignored}"
    if seed is not None:
        return f"seed {seed}: every test's examples follow from it (no example database is read)"
    saved = f" plus failures saved in {database}" if database else ""
    return f"random: an unrecorded seed per test{saved}; this run cannot be replayed exactly"


def replay_args(name: str, seed: int | str | None, derandomize: bool) -> list[str]:
    """The Hypothesis options that make another run draw exactly this run's examples.

    ``--hypothesis-profile <short name>``, plus ``--hypothesis-seed N`` for a randomised profile
    with a seed (a derandomised profile needs none). Empty when the run cannot be replayed
    (randomised without a recorded seed).
    """
    if not derandomize and seed is None:
        return []
    args = ["--hypothesis-profile", short_name(name)]
    if not derandomize:
        args += ["--hypothesis-seed", str(seed)]
    return args


# Options a replay sets itself (Hypothesis) or does not need for one test (xdist), with or without a value.
_REPLACED_WITH_VALUE = ("--hypothesis-seed", "--hypothesis-profile", "--numprocesses", "--maxprocesses", "--dist", "-n")
_REPLACED_FLAGS = ("--looponfail", "-f")


def replay_options(args: list[str], test_paths: list[str]) -> list[str]:
    """A run's command-line ``args`` without its test paths and the options a replay replaces.

    ``test_paths`` are the positional arguments pytest parsed (``config.args``); a replay names one
    test id instead. Dropped as well: ``--hypothesis-seed``/``--hypothesis-profile`` (the replay
    sets them) and xdist's ``-n``/``--numprocesses``/``--maxprocesses``/``--dist`` (one test needs
    no workers), in their ``--opt VALUE``, ``--opt=VALUE`` and ``-nVALUE`` forms.
    """
    paths = list(test_paths)
    kept: list[str] = []
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
            continue
        if arg in _REPLACED_WITH_VALUE:
            skip_value = True
            continue
        if arg in _REPLACED_FLAGS or any(arg.startswith(f"{o}=") for o in _REPLACED_WITH_VALUE if o.startswith("--")):
            continue
        if arg.startswith("-n") and not arg.startswith("--") and len(arg) > 2:
            continue  # -n2, -nauto
        if arg in paths:
            paths.remove(arg)
            continue
        kept.append(arg)
    return kept


def load_profile(name: str, seed: int | str | None = None) -> dict[str, Any]:
    """Register the lmfacts profiles, load ``name`` (short or full) and describe it for ``run.json``.

    ``seed`` is the ``--hypothesis-seed`` value of the run (None when there is none); nothing else
    is consulted. Returns ``{"name", "max_examples", "derandomize", "deadline", "database",
    "print_blob", "seed", "examples_from", "replay_args"}``, where ``seed`` is the seed that drives
    the examples: None under a derandomised profile, which ignores it (a given seed is kept as
    ``"seed_ignored"``). ``examples_from`` says in words what decides the examples;
    ``replay_args`` are the Hypothesis options that replay them (see :func:`replay_args`).
    """
    full_name = resolve_profile_name(name)
    register_profiles()
    settings.load_profile(full_name)
    active = settings.get_profile(full_name)
    deadline = active.deadline
    derandomize = bool(active.derandomize)
    database = describe_database(active.database)
    info: dict[str, Any] = {
        "name": full_name,
        "max_examples": active.max_examples,
        "derandomize": derandomize,
        "deadline": None if deadline is None else deadline.total_seconds(),
        "database": database,
        "print_blob": active.print_blob,
        "seed": None if derandomize else seed,
        "examples_from": examples_source(derandomize, seed, database),
        "replay_args": replay_args(full_name, seed, derandomize),
    }
    if derandomize and seed is not None:
        info["seed_ignored"] = seed
    return info
