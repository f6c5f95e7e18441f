"""Expectations as data: load, validate and resolve ``fixtures/expectations/*.toml``.

Schema (one file per model family or model; every file has ``schema = 1``)::

    schema = 1
    [[expectation]]
    claim = "RN-1"                    # a registered claim id
    kind = "published"                # published | measured | default
    source = "RN §Summary"            # where the number comes from
    match = { models = ["gpt2-xl"] }  # or architectures = [...], encoder = true, normalization = "RMS",
                                      # quantized = true, default = true
    params = { window = [5, 41], rate = 1.045, rate_tol = 0.015 }
    xfail = "why the claim is known not to hold"   # optional: strict expected failure
    skip = "why the claim does not apply"           # optional: skipped with this reason
    measured_by = { lmfacts = "0.1.0", date = "2026-11-23", corpus_sha256 = "…" }  # kind = measured only

Resolution for (claim, model): entries matching the model's name win over architecture matches,
which win over predicate matches (encoder / normalization / quantized), which win over the
default. Two entries at the same level for the same claim and model are an error. Params of a less
specific entry are inherited unless the more specific one overrides them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("published", "measured", "default")
MATCH_KEYS = {"models": list, "architectures": list, "encoder": bool, "normalization": str, "quantized": bool,
              "default": bool}
ENTRY_KEYS = {"claim", "kind", "source", "match", "params", "xfail", "skip", "measured_by", "note"}
LEVELS = ("models", "architectures", "predicate", "default")


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
    measured_by: dict[str, Any] | None
    file: str
    index: int

    def level(self, facts: ModelFacts) -> int | None:
        """The specificity level at which this entry matches ``facts`` (0 = by name), or None."""
        m = self.match
        if "models" in m:
            return 0 if any(n in m["models"] for n in facts.names) else None
        if "architectures" in m:
            return 1 if facts.architecture in m["architectures"] else None
        preds = {k: v for k, v in m.items() if k in ("encoder", "normalization", "quantized")}
        if preds:
            ok = all({"encoder": facts.is_encoder, "normalization": facts.normalization,
                      "quantized": facts.quantized}[k] == v for k, v in preds.items())
            return 2 if ok else None
        return 3 if m.get("default") else None


@dataclass
class Resolved:
    """The expectation that applies to one (claim, model), merged across levels."""

    claim: str
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "default"
    source: str = ""
    xfail: str | None = None
    skip: str | None = None
    measured_by: dict[str, Any] | None = None
    origin: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        if key not in self.params:
            raise KeyError(f"expectation for {self.claim} has no parameter {key!r} (from {self.origin})")
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A parameter or ``default``."""
        return self.params.get(key, default)


def _fail(path: Path, where: str, msg: str) -> ExpectationFileError:
    return ExpectationFileError(f"{path}: {where}: {msg}")


def _validate_entry(path: Path, i: int, raw: Any, known_claims: set[str] | None) -> Expectation:
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
    measured_by = raw.get("measured_by")
    if kind == "measured" and not isinstance(measured_by, dict):
        raise _fail(path, f"{where}.measured_by", "a measured baseline must say lmfacts version, date, corpus hash")
    return Expectation(claim, kind, source, dict(match), dict(params), raw.get("xfail"), raw.get("skip"),
                       measured_by, str(path), i)


def load_file(path: Path, known_claims: set[str] | None = None) -> list[Expectation]:
    """Parse and validate one expectation file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ExpectationFileError(f"{path}: invalid TOML: {exc}") from None
    if data.get("schema") != 1:
        raise _fail(path, "schema", "every expectation file starts with `schema = 1`")
    unknown = set(data) - {"schema", "expectation", "description"}
    if unknown:
        raise _fail(path, "top level", f"unknown key(s) {sorted(unknown)}")
    entries = data.get("expectation", [])
    if not isinstance(entries, list):
        raise _fail(path, "expectation", "use [[expectation]] tables")
    return [_validate_entry(path, i, raw, known_claims) for i, raw in enumerate(entries)]


def default_dir() -> Path:
    """``$LMFACTS_EXPECTATIONS_DIR`` if set, else the repository's ``fixtures/expectations``."""
    env = os.environ.get("LMFACTS_EXPECTATIONS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "fixtures" / "expectations"


def load_all(directory: Path | None = None, known_claims: set[str] | None = None) -> list[Expectation]:
    """Load every ``*.toml`` in ``directory`` (sorted, deterministic)."""
    directory = directory or default_dir()
    out: list[Expectation] = []
    for path in sorted(directory.glob("*.toml")):
        out.extend(load_file(path, known_claims))
    return out


def resolve(entries: list[Expectation], claim: str, facts: ModelFacts) -> Resolved:
    """Merge the entries that apply to (claim, model), most specific last so it wins."""
    by_level: dict[int, Expectation] = {}
    for e in entries:
        if e.claim != claim:
            continue
        lvl = e.level(facts)
        if lvl is None:
            continue
        if lvl in by_level:
            other = by_level[lvl]
            raise ExpectationFileError(
                f"{e.file}: expectation[{e.index}] and {other.file}: expectation[{other.index}] both set {claim} "
                f"for {facts.names[0]} at the same level ({LEVELS[lvl]}): make one more specific or remove one"
            )
        by_level[lvl] = e
    out = Resolved(claim)
    for lvl in sorted(by_level, reverse=True):
        e = by_level[lvl]
        out.params.update(e.params)
        out.kind, out.source = e.kind, e.source
        out.xfail = e.xfail or out.xfail
        out.skip = e.skip or out.skip
        out.measured_by = e.measured_by or out.measured_by
        out.origin.append(f"{Path(e.file).name}#{e.index}")
    return out
