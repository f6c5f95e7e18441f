"""Expectations as data: load, validate and resolve ``fixtures/expectations/*.toml`` and users' own files.

The built-in files are ``fixtures/expectations/*.toml`` of a checkout, shipped in the wheel as
``lmfacts/fixtures/expectations/`` (``$LMFACTS_EXPECTATIONS_DIR`` replaces them). A run adds users'
files with ``--expectations PATH`` (repeatable; a ``.toml`` file or a directory of them,
:func:`user_files`): same schema, same validation, same resolution; their entries' origins name the
path as given (``my/expect.toml#0 (published: …)``), the built-in ones the file name (``rn.toml#3 …``).

Schema (one file per model family or model; every file has ``schema = 1``)::

    schema = 1
    [[expectation]]
    claim = "RN-1"                    # a registered claim id
    kind = "published"                # published | default
    source = "RN §Summary"            # where the number comes from
    match = { models = ["gpt2-xl"] }  # or architectures = [...], encoder = true, normalization = "RMS",
                                      # quantized = true, default = true
    params = { window = [5, 41], rate = 1.045, rate_tol = 0.015 }
    xfail = "why the claim is known not to hold"   # optional: strict expected failure
    skip = "why the claim does not apply"           # optional: skipped with this reason

What one model measured (its findings, its headline values) is not an expectation: it is recorded from a
run into a baseline file (:mod:`lmfacts.baselines`, ``fixtures/baselines/``) and guarded on top of these
predicates; a ``kind = "measured"`` entry is an error that says so.

Resolution for (claim, model): entries matching the model's name win over architecture matches,
which win over predicate matches (encoder / normalization / quantized), which win over the
default. Two entries at the same level for the same claim and model are an error, except that a user's
entry (``--expectations``) at the level of a built-in one is applied after it, so it wins (a lab's own
number for a model the catalogue already covers). Params of a less specific entry are inherited unless
the more specific one overrides them.

Every claim declares its parameters where it is registered (:class:`lmfacts.claims.Param`), and
those declarations hold the only defaults: :func:`resolve` starts from them, then applies the
matching entries, and :class:`Resolved` remembers per parameter where its value came from
(``"claim default"`` or ``"rn.toml#3 (published: RN §Summary)"``). :func:`validate_params` checks
every entry's ``params`` against its claim's schema (unknown key, wrong type); the plugin runs it
once the claims are collected, before any model loads.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmfacts.resources import fixtures_dir

if TYPE_CHECKING:
    from lmfacts.claims import ClaimSpec

CLAIM_DEFAULT = "claim default"
KINDS = ("published", "default")
MATCH_KEYS = {"models": list, "architectures": list, "encoder": bool, "normalization": str, "quantized": bool,
              "default": bool}
ENTRY_KEYS = {"claim", "kind", "source", "match", "params", "xfail", "skip", "note"}
LEVELS = ("models", "architectures", "predicate", "default")
PREDICATES = ("encoder", "normalization", "quantized")
_ENTRY_HEADER = re.compile(r"^\s*\[\[\s*expectation\s*\]\]")


class ExpectationFileError(ValueError):
    """A malformed expectation file; the message names the file and the key to fix."""


@dataclass(frozen=True)
class ModelFacts:
    """What expectation matching needs to know about a model."""

    names: tuple[str, ...]  # the name given, its alias target, its HF id …
    architecture: str
    is_encoder: bool
    normalization: str
    quantized: bool


@dataclass(frozen=True)
class Expectation:
    """One validated ``[[expectation]]`` entry."""

    claim: str
    kind: str
    source: str
    match: dict[str, Any]
    params: dict[str, Any]
    xfail: str | None
    skip: str | None
    file: str
    index: int
    label: str = ""  # how origins name the file (default: its name; a user's file: the path as given)
    user: bool = False  # from a user's file (--expectations): applied after a built-in entry of its level
    line: int | None = None  # the line of its ``[[expectation]]`` header (None: written another way)

    @property
    def where(self) -> str:
        """``<file>: expectation[<index>] (line <n>)``, how errors name the entry."""
        return f"{self.file}: expectation[{self.index}]" + (f" (line {self.line})" if self.line else "")

    @property
    def name(self) -> str:
        """The file as origins show it: :attr:`label`, else the file's name."""
        return self.label or Path(self.file).name

    @property
    def selector(self) -> tuple[int, Any] | None:
        """The level this entry's ``match`` is written at (0 = by name … 3 = default; :data:`LEVELS`) and what it
        selects there (a set of model names or architectures, a dict of predicates, None for the default), or
        None when it selects nothing (``default = false`` alone)."""
        m = self.match
        if "models" in m:
            return 0, set(m["models"])
        if "architectures" in m:
            return 1, set(m["architectures"])
        preds = {k: m[k] for k in PREDICATES if k in m}
        if preds:
            return 2, preds
        return (3, None) if m.get("default") else None

    def level(self, facts: ModelFacts) -> int | None:
        """The specificity level at which this entry matches ``facts`` (0 = by name), or None."""
        sel = self.selector
        if sel is None:
            return None
        lvl, what = sel
        if lvl == 0:
            ok = any(n in what for n in facts.names)
        elif lvl == 1:
            ok = facts.architecture in what
        elif lvl == 2:
            ok = all({"encoder": facts.is_encoder, "normalization": facts.normalization,
                      "quantized": facts.quantized}[k] == v for k, v in what.items())
        else:
            ok = True
        return lvl if ok else None


@dataclass
class Resolved:
    """The expectation that applies to one (claim, model), merged across levels.

    ``params`` holds every parameter the claim declares (its default, overridden by the matching
    entries; ``None`` for an optional one nobody set). ``origins[name]`` says where each value came from: :data:`CLAIM_DEFAULT` or
    ``"<file>#<index> (<kind>: <source>)"``; ``units[name]`` is the declared unit. ``origin`` lists
    the entries applied, least specific first.
    """

    claim: str
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "default"
    source: str = ""
    xfail: str | None = None
    skip: str | None = None
    origin: list[str] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key not in self.params:
            raise KeyError(f"expectation for {self.claim} has no parameter {key!r} (declared: "
                           f"{sorted(self.params)}; entries {self.origin})")
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A parameter, or ``default`` when it is absent or ``None`` (for measures that take any expectation)."""
        value = self.params.get(key)
        return default if value is None else value

    def describe(self) -> dict[str, dict[str, Any]]:
        """``{name: {"value", "origin", "unit"}}`` for the claim record (JSON-ready, sorted by name)."""
        return {name: {"value": self.params[name], "origin": self.origins.get(name, CLAIM_DEFAULT),
                       "unit": self.units.get(name, "")} for name in sorted(self.params)}


def _fail(path: Path, where: str, msg: str) -> ExpectationFileError:
    return ExpectationFileError(f"{path}: {where}: {msg}")


def _validate_entry(path: Path, i: int, raw: Any, known_claims: set[str] | None, label: str = "",
                    user: bool = False, line: int | None = None) -> Expectation:
    where = f"expectation[{i}]"
    if not isinstance(raw, dict):
        raise _fail(path, where, "must be a table")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise _fail(path, where, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(ENTRY_KEYS)}")
    claim = raw.get("claim")
    if not isinstance(claim, str):
        raise _fail(path, f"{where}.claim", "missing or not a string (e.g. claim = \"RN-1\")")
    if known_claims is not None and claim not in known_claims:
        raise _fail(path, f"{where}.claim", f"unknown claim {claim!r}; known: {sorted(known_claims)}")
    kind = raw.get("kind", "default")
    if kind == "measured":
        raise _fail(path, f"{where}.kind", "a model's measured values are a baseline, not an expectation: record "
                                           "them with `python -m lmfacts baseline record` into fixtures/baselines/")
    if kind not in KINDS:
        raise _fail(path, f"{where}.kind", f"{kind!r} is not one of {KINDS}")
    source = raw.get("source")
    if not isinstance(source, str) or not source:
        raise _fail(path, f"{where}.source", "missing: say where the expectation comes from")
    match = raw.get("match")
    if not isinstance(match, dict) or not match:
        raise _fail(path, f"{where}.match", "missing: e.g. match = { models = [\"gpt2-xl\"] } or { default = true }")
    for key, value in match.items():
        if key not in MATCH_KEYS:
            raise _fail(path, f"{where}.match.{key}", f"unknown match key; allowed: {sorted(MATCH_KEYS)}")
        if not isinstance(value, MATCH_KEYS[key]):
            raise _fail(path, f"{where}.match.{key}", f"must be a {MATCH_KEYS[key].__name__}")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise _fail(path, f"{where}.params", "must be a table")
    for key in ("xfail", "skip"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise _fail(path, f"{where}.{key}", "must be a non-empty reason string")
    return Expectation(claim, kind, source, dict(match), dict(params), raw.get("xfail"), raw.get("skip"),
                       str(path), i, label, user, line)


def load_file(path: Path, known_claims: set[str] | None = None, label: str = "",
              user: bool = False) -> list[Expectation]:
    """Parse and validate one expectation file (structure; ``params`` are checked by :func:`validate_params`).

    ``label`` is how the entries' origins name the file (default: its name); ``user`` marks a user's
    file (``--expectations``, see :func:`resolve`). Raises
    :class:`ExpectationFileError` naming the file (and the entry and key) for unreadable or invalid TOML,
    a missing ``schema = 1``, or an entry that breaks the schema.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExpectationFileError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExpectationFileError(f"{path}: cannot read: {exc}") from None
    if data.get("schema") != 1:
        raise _fail(path, "schema", "every expectation file starts with `schema = 1`")
    unknown = set(data) - {"schema", "expectation", "description"}
    if unknown:
        raise _fail(path, "top level", f"unknown key(s) {sorted(unknown)}")
    entries = data.get("expectation", [])
    if not isinstance(entries, list):
        raise _fail(path, "expectation", "use [[expectation]] tables")
    lines = [n for n, row in enumerate(text.splitlines(), 1) if _ENTRY_HEADER.match(row)]
    if len(lines) != len(entries):  # entries written as an inline array: no header lines to name
        lines = [None] * len(entries)
    return [_validate_entry(path, i, raw, known_claims, label, user, line)
            for i, (raw, line) in enumerate(zip(entries, lines, strict=True))]


def default_dir() -> Path:
    """``$LMFACTS_EXPECTATIONS_DIR`` if set, else the built-in expectations.

    The built-in ones are ``fixtures/expectations`` of a checkout, ``lmfacts/fixtures/expectations`` of
    an installed wheel (:func:`lmfacts.resources.fixtures_dir`).
    """
    env = os.environ.get("LMFACTS_EXPECTATIONS_DIR")
    return Path(env) if env else fixtures_dir("expectations")


def user_files(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """The expectation files named by ``--expectations PATH`` arguments, as ``(path, label)`` pairs.

    A file must exist and end in ``.toml``; a directory contributes its ``*.toml`` files (sorted, not
    recursive) and must hold at least one. A path given twice is read once. ``label`` is the path as
    given (a directory's files: ``<dir as given>/<name>``), what origins show. Raises
    :class:`ExpectationFileError` naming the path for anything else.
    """
    out: dict[Path, str] = {}
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            files = sorted(path.glob("*.toml"))
            if not files:
                raise ExpectationFileError(f"--expectations {given}: the directory holds no *.toml file")
            for f in files:
                out.setdefault(f.resolve(), (Path(given) / f.name).as_posix())
        elif path.is_file():
            if path.suffix != ".toml":
                raise ExpectationFileError(f"--expectations {given}: not a .toml file")
            out.setdefault(path.resolve(), Path(given).as_posix())
        else:
            raise ExpectationFileError(f"--expectations {given}: no such file or directory")
    return list(out.items())


def load_all(directory: Path | None = None, known_claims: set[str] | None = None,
             extra: Sequence[str | Path] = ()) -> list[Expectation]:
    """The built-in expectations (every ``*.toml`` in ``directory``, default :func:`default_dir`; sorted)
    followed by the users' files ``extra`` (``--expectations`` arguments, :func:`user_files`).

    Raises :class:`ExpectationFileError` naming the file for a malformed one, and for two entries of one
    group (the built-in files, or the users' files) that always apply together (:func:`check_conflicts`).
    """
    directory = directory or default_dir()
    out: list[Expectation] = []
    for path in sorted(directory.glob("*.toml")):
        out.extend(load_file(path, known_claims))
    for path, label in user_files(extra):
        out.extend(load_file(path, known_claims, label=label, user=True))
    check_conflicts(out)
    return out


def _common(a: tuple[int, Any], b: tuple[int, Any]) -> str | None:
    """The models two selectors of one level both take (as words), or None when they can differ."""
    if a[0] != b[0]:
        return None
    if a[0] in (0, 1):
        return ", ".join(sorted(a[1] & b[1])) or None
    if a[0] == 2:
        return "models with " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in a[1].items()) if a[1] == b[1] else None
    return "every model"


def check_conflicts(entries: Sequence[Expectation]) -> None:
    """Reject two entries that :func:`resolve` could never choose between, on every model they select.

    Within one group (built-in / ``$LMFACTS_EXPECTATIONS_DIR`` entries, or the users' ``--expectations``
    entries; a user's entry at the level of a built-in one is an override, not a conflict), two entries
    for the same claim conflict when their ``models`` (or ``architectures``) lists share a name, their
    predicates are the same, or both are ``default = true``. Overlaps that depend on the model (two names of
    one model, predicates one model meets both of) are left to :func:`resolve` at run time.
    Raises :class:`ExpectationFileError` naming both entries (file, index, line), the claim, the level and
    the fix.
    """
    seen: dict[tuple[bool, str], list[tuple[Expectation, tuple[int, Any]]]] = {}
    for e in entries:
        sel = e.selector
        if sel is None:
            continue
        for other, other_sel in seen.setdefault((e.user, e.claim), []):
            who = _common(other_sel, sel)
            if who:
                raise ExpectationFileError(
                    f"{other.where} and {e.where} both set {e.claim} for {who} at the same level "
                    f"({LEVELS[sel[0]]}): lmfacts cannot tell which applies, so every test of {e.claim} on such a "
                    "model would end in an error. Keep one entry (merge their params into it) and remove one, or "
                    "narrow one's match so the two select different models (an entry of yours at the level of a "
                    "built-in one is fine: it overrides it)")
        seen[e.user, e.claim].append((e, sel))


def _origin(e: Expectation) -> str:
    return f"{e.name}#{e.index} ({e.kind}: {e.source})"


def validate_params(entries: list[Expectation], specs: dict[str, ClaimSpec]) -> None:
    """Check every entry's ``params`` against its claim's declared schema.

    Entries of claims not in ``specs`` (a claim family not collected) are not checked. Raises
    :class:`ExpectationFileError` naming the file, the entry index, the claim, the key and the
    valid keys for an unknown key, the declared type for a value of the wrong type, and the declared
    :class:`lmfacts.claims.Domain` for a value outside it (a share threshold of 1.5).
    """
    for e in entries:
        spec = specs.get(e.claim)
        if spec is None:
            continue
        schema = spec.schema
        for key, value in e.params.items():
            where = f"{e.file}: expectation[{e.index}] (claim {e.claim}).params.{key}"
            param = schema.get(key)
            if param is None:
                raise ExpectationFileError(f"{where}: unknown parameter {key!r} of claim {e.claim}; "
                                           f"valid keys: {', '.join(sorted(schema))}")
            if not param.accepts(value):
                raise ExpectationFileError(f"{where}: {value!r} is not a {param.type_name} "
                                           f"({param.meaning or 'see the claim'})")
            problem = _empty_value_problem(key, value)
            if problem:
                raise ExpectationFileError(f"{where}: {problem} ({param.meaning or 'see the claim'})")
            if param.domain is not None and not param.domain.contains(value):
                raise ExpectationFileError(
                    f"{where}: {value!r} is outside {key}'s domain {param.domain} ({param.domain.what}): compared "
                    "with it, every model would pass (or fail) whatever it measures; give a value in "
                    f"{param.domain} ({param.meaning or 'see the claim'})")
        for key, value in e.params.items():
            if key.endswith("_min") and f"{key[:-4]}_max" in e.params:
                hi = e.params[f"{key[:-4]}_max"]
                if _is_number(value) and _is_number(hi) and value > hi:
                    raise ExpectationFileError(
                        f"{e.file}: expectation[{e.index}] (claim {e.claim}).params: {key} = {value!r} is above "
                        f"{key[:-4]}_max = {hi!r}: no value can pass, so every model would fail without a finding; "
                        "swap them or drop one")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _empty_value_problem(key: str, value: Any) -> str | None:
    """Why a well-typed parameter value leaves a claim nothing to judge, or None.

    A non-finite float (TOML ``nan``, ``inf``) makes every comparison false or true whatever was
    measured; a negative tolerance (``tol``, ``*_tol``, ``*_rtol``) is an empty band; a window
    (``window``, ``*_window``: inclusive ``[lo, hi]`` indices) is two indices with ``0 ≤ lo ≤ hi``
    (another shape selects nothing, or not what it says). Each would turn a claim's verdict into a constant, never a finding about a model.
    """
    items = value if isinstance(value, list) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in items):
        return f"{value!r} is not finite: every comparison with it has a fixed answer, whatever the model measures"
    if (key == "tol" or key.endswith(("_tol", "_rtol"))) and _is_number(value) and value < 0:
        return f"a negative tolerance ({value!r}) is an empty band that no value can pass"
    if (key == "window" or key.endswith("_window")) and isinstance(value, list) and all(map(_is_number, value)) \
            and (len(value) != 2 or value[0] > value[1] or value[0] < 0):
        return f"window {value!r} is not [lo, hi] with 0 ≤ lo ≤ hi (inclusive indices)"
    return None


def resolve(entries: list[Expectation], claim: str, facts: ModelFacts,
            spec: ClaimSpec | None = None) -> Resolved:
    """Merge the entries that apply to (claim, model), most specific last so it wins.

    With ``spec`` (the claim's registration) the result starts from the declared defaults, each
    with origin :data:`CLAIM_DEFAULT`, and a :data:`lmfacts.claims.REQUIRED` parameter that no
    entry gives raises :class:`ExpectationFileError`. Two matching entries at the same level raise
    it too, unless one is built-in and the other a user's (:attr:`Expectation.user`): the user's is
    applied after the built-in one, so its params win and its kind and source describe the result.
    """
    by_level: dict[tuple[int, bool], Expectation] = {}
    for e in entries:
        if e.claim != claim:
            continue
        lvl = e.level(facts)
        if lvl is None:
            continue
        if (lvl, e.user) in by_level:
            other = by_level[lvl, e.user]
            raise ExpectationFileError(
                f"{other.where} and {e.where} both set {claim} for {facts.names[0]} at the same level "
                f"({LEVELS[lvl]}): make one more specific or remove one"
            )
        by_level[lvl, e.user] = e
    out = defaults_of(spec) if spec is not None else Resolved(claim)
    for key in sorted(by_level, key=lambda k: (-k[0], k[1])):  # least specific first; a user's after a built-in
        e = by_level[key]
        out.params.update(e.params)
        out.origins.update(dict.fromkeys(e.params, _origin(e)))
        out.kind, out.source = e.kind, e.source
        out.xfail = e.xfail or out.xfail
        out.skip = e.skip or out.skip
        out.origin.append(f"{e.name}#{e.index}")
    if spec is not None:
        from lmfacts.claims import REQUIRED

        missing = sorted(k for k, v in out.params.items() if v is REQUIRED)
        if missing:
            raise ExpectationFileError(f"claim {claim}: parameter(s) {missing} are required and no expectation "
                                       f"entry for {facts.names[0]} gives them (entries applied: {out.origin})")
    return out


def defaults_of(spec: ClaimSpec, **overrides: Any) -> Resolved:
    """The claim's declared defaults as a :class:`Resolved` (no entry applied), with ``overrides``.

    An override of an undeclared parameter raises ``KeyError``; its origin is ``"override"``.
    """
    out = Resolved(spec.id)
    for p in spec.params:
        out.params[p.name], out.origins[p.name], out.units[p.name] = p.default, CLAIM_DEFAULT, p.unit
    schema = spec.schema
    for key, value in overrides.items():
        if key not in schema:
            raise KeyError(f"claim {spec.id} declares no parameter {key!r}; declared: {sorted(schema)}")
        out.params[key], out.origins[key], out.units[key] = value, "override", schema[key].unit
    for key in set(schema) - set(out.units):
        out.units[key] = schema[key].unit
    return out
