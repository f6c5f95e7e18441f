"""Baselines: a model's findings recorded once from a run and guarded on every later run.

A *baseline file* (``fixtures/baselines/<model>.toml``, written by ``python -m lmfacts baseline record
reports/<run-id> --model NAME --out FILE``, never by hand) holds, for one model in one configuration,
what each claim did in the recorded run:

* a **passed** claim: its headline values (``ClaimSpec.headline``) with tolerances;
* a **failed** claim: a *strict expected failure* — the finding as the run stated it (the record's
  reason, e.g. ``"kurtosis at the embeddings 4.64 < 6"``) plus its headline values with tolerances.

Skipped, errored and inconclusive claims are not recorded: the catalogue's predicates decide them on
every run. Headline values that are not finite scalars (lists, tables, booleans, NaN) are not
recorded either. Recording twice from the same run gives a byte-identical file (claims in catalogue
order, the date is the run's ``created_utc``, not the time of recording).

**Tolerances** (``tol``, absolute, in the value's unit; a later value ``v`` is within when
``|v − value| ≤ tol``): the largest of

1. the value's measured uncertainty, where the run measured one:
   * half the width of the bootstrap CI of the interval verdict (``record.intervals``) that judged
     this value (same name, the dotted key with ``_`` for ``.``, or the same value);
   * for a per-prompt (Hypothesis) claim, half the spread ``(max_value − min_value) / 2`` of the
     per-example values the run observed (``n_examples ≥ 2``);
2. the **dtype floor** ``float_tol(1e-3, dtype) · max(|value|, 1e-3)`` (:func:`dtype_floor`): a relative
   10⁻³ in float32 (a corpus statistic accumulates float32 rounding over ~10⁵ tokens and ~30 layers;
   re-runs on the same machine reproduce it to ~10⁻⁶), widened to 8 ulps of the dtype the model ran
   in (6.25 % in bfloat16, 0.78 % in float16) — never tighter than the dtype allows.

The tolerance is rounded *up* to two significant digits (``tol_from`` says which rule gave it).

**Guarding** (:mod:`lmfacts.baselines.guard`, applied by the plugin unless ``--no-baselines``):
a recorded failure that still fails with its headline values within tolerance is ``xfailed`` (a
*known finding*); one that now passes is ``XPASS(strict)`` (the run fails); one whose values moved
past tolerance fails; a recorded pass whose value leaves its tolerance fails with the old and the
new value. A baseline never turns a failure into a pass. A baseline is compared only when the run
is comparable (same dtype, revision, weight format; for claims that measure on prompts — all but
those registered with ``@claim(inputs="weights")`` — the same corpus sha256, number of probe prompts
and probe token sampling, and the same BOS convention (``--prepend-bos``; a file without
``prepends_bos`` assumes the bridge's default); for per-prompt claims the same Hypothesis profile);
otherwise the record
says ``not compared: why``.

File format (``schema = 1``)::

    schema = 1
    [model]          # name, revision, weight_format, quantization, dtype (keys of this baseline)
    [measured_by]    # lmfacts, run_id, date, device, corpus_sha256, n_prompts, probe_sample_tokens,
                     # hypothesis_profile, prepends_bos (whether a BOS token was prepended)
    [[claim]]        # id, outcome ("passed" | "failed"), reason (failed only), title (for the reader)
    [[claim.headline]]   # key, value, tol, tol_from
"""

from __future__ import annotations

import json
import math
import numbers
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmfacts.resources import fixtures_dir

SCHEMA = 1
RECORDED_OUTCOMES = ("passed", "failed")
MODEL_KEYS = ("name", "revision", "weight_format", "quantization", "dtype")
MEASURED_BY_KEYS = ("lmfacts", "run_id", "date", "device", "corpus_sha256", "n_prompts", "probe_sample_tokens",
                    "hypothesis_profile", "prepends_bos")
CLAIM_KEYS = ("id", "title", "outcome", "reason", "headline")
HEADLINE_KEYS = ("key", "value", "tol", "tol_from")
FLOOR_BASE = 1e-3


class BaselineFileError(ValueError):
    """A malformed baseline file or a bad ``baseline record`` input; the message names the file and the key."""


@dataclass(frozen=True)
class HeadlineBaseline:
    """One recorded headline value and its tolerance (absolute, in the value's unit)."""

    key: str
    value: float
    tol: float
    tol_from: str = ""

    def within(self, value: float) -> bool:
        """``|value − self.value| ≤ tol`` (a non-finite value never is)."""
        return math.isfinite(value) and abs(value - self.value) <= self.tol


@dataclass(frozen=True)
class ClaimBaseline:
    """What one claim did in the recorded run."""

    claim: str
    outcome: str
    reason: str | None
    headline: tuple[HeadlineBaseline, ...]
    title: str = ""
    index: int = 0


@dataclass(frozen=True)
class Baseline:
    """One baseline file: a model in one configuration, and its claims by id."""

    file: str
    model: dict[str, Any]
    measured_by: dict[str, Any]
    claims: dict[str, ClaimBaseline] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The model name the file is for (``[model] name``)."""
        return str(self.model["name"])


# -- tolerances ------------------------------------------------------------------------------------
def dtype_floor(value: float, dtype: str) -> float:
    """The smallest tolerance of ``value`` in a run in ``dtype``: ``float_tol(1e-3, dtype) · max(|value|, 1e-3)``.

    Absolute, in the value's unit. Raises ``ValueError`` for an unknown dtype.
    """
    from lmfacts.tolerances import float_tol

    return float_tol(FLOOR_BASE, dtype) * max(abs(float(value)), 1e-3)


def _round_up(x: float) -> float:
    """``x`` rounded up to two significant digits (a positive finite number stays ≥ ``x``)."""
    if x <= 0 or not math.isfinite(x):
        return x
    exp = math.floor(math.log10(x)) - 1
    scaled = math.ceil(round(x / 10.0 ** exp, 9))
    out = float(f"{scaled}e{exp}")
    return out if out >= x else float(f"{scaled + 1}e{exp}")


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _interval_for(record: dict[str, Any], key: str, value: float) -> tuple[str, dict[str, Any]] | None:
    intervals = record.get("intervals") or {}
    for name in (key, key.replace(".", "_")):
        entry = intervals.get(name)
        if isinstance(entry, dict):
            return name, entry
    for name, entry in sorted(intervals.items()):
        if isinstance(entry, dict) and entry.get("value") == value:
            return name, entry
    return None


def tolerance_for(record: dict[str, Any], key: str, value: float, dtype: str) -> tuple[float, str]:
    """The tolerance of headline ``key`` = ``value`` of ``record`` and the rule that gave it (module doc).

    Returns ``(tol, tol_from)``; ``tol`` is absolute and never below :func:`dtype_floor`.
    """
    floor = dtype_floor(value, dtype)
    candidates: list[tuple[float, str]] = [(floor, f"dtype floor ({dtype}: {_fmt(floor / max(abs(value), 1e-3))} "
                                                   f"relative)")]
    found = _interval_for(record, key, value)
    if found is not None:
        name, e = found
        ci = e.get("ci") or []
        if len(ci) == 2 and all(_finite(c) for c in ci):
            half = (float(ci[1]) - float(ci[0])) / 2.0
            level = e.get("level")
            pct = f"{100 * level:g}% " if _finite(level) else ""
            candidates.append((half, f"half the {pct}bootstrap CI of {name} [{_fmt(ci[0])}, {_fmt(ci[1])}] "
                                     f"({e.get('n_resamples')} resamples, {e.get('method')})"))
    m = record.get("measured") or {}
    n = m.get("n_examples")
    if isinstance(n, int) and n >= 2 and _finite(m.get("min_value")) and _finite(m.get("max_value")):
        half = (float(m["max_value"]) - float(m["min_value"])) / 2.0
        candidates.append((half, f"half the spread over {n} Hypothesis examples [{_fmt(m['min_value'])}, "
                                 f"{_fmt(m['max_value'])}]"))
    tol, why = max(candidates, key=lambda c: c[0])
    return _round_up(tol), why


def _finite(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


# -- recording -----------------------------------------------------------------------------------------
def _raw(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """The claim's own outcome and reason in a run (a guarded run keeps them in ``record["baseline"]``)."""
    b = record.get("baseline")
    if isinstance(b, dict) and b.get("raw_outcome"):
        return b.get("raw_outcome"), b.get("raw_reason")
    return record.get("outcome"), record.get("reason")


def _model_entry(models: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for m in models:
        if m.get("name") == name:
            return m
    return {}


def record_baseline(run_dir: str | Path, model: str | None = None, device: str | None = None) -> str:
    """The baseline file text (TOML) for ``model`` from the finished run in ``run_dir``.

    ``model`` may be omitted when the run measured one model; ``device`` when it ran on one device.
    Raises :class:`BaselineFileError` for a directory without ``run.json``/``results.jsonl``, an
    unknown model, or several records of one claim without ``device``.
    """
    from lmfacts.report.outcomes import claim_sort_key
    from lmfacts.report.store import RunStore

    store = RunStore(run_dir)
    try:
        info = store.read_run_info()
    except FileNotFoundError:
        raise BaselineFileError(f"{run_dir}: no run.json (not a finished lmfacts run directory)") from None
    records = store.read_results()
    if not records:
        raise BaselineFileError(f"{run_dir}: no results.jsonl records")
    names = sorted({str(r.get("model")) for r in records if r.get("model")})
    if model is None:
        if len(names) != 1:
            raise BaselineFileError(f"{run_dir} measured {len(names)} models ({', '.join(names)}): pass --model NAME")
        model = names[0]
    if model not in names:
        raise BaselineFileError(f"{run_dir} has no results for model {model!r}; models: {', '.join(names)}")
    recs = [r for r in records if r.get("model") == model and (device is None or r.get("device") == device)]
    devices = sorted({str(r.get("device")) for r in recs})
    if len(devices) > 1:
        raise BaselineFileError(f"{run_dir}: {model} ran on devices {', '.join(devices)}: pass --device")
    by_claim: dict[str, dict[str, Any]] = {}
    for r in recs:
        cid = str(r.get("claim"))
        if cid in by_claim:
            raise BaselineFileError(f"{run_dir}: two records of {cid} on {model} (a run with a rerun?)")
        by_claim[cid] = r
    run = info.get("run") or {}
    entry = _model_entry(info.get("models") or [], model)
    dtype = str(next((r.get("dtype") for r in recs if r.get("dtype")), None) or entry.get("dtype") or
                (run.get("options") or {}).get("dtype") or "float32")
    corpus = run.get("corpus") or {}
    options = run.get("options") or {}
    revision = entry.get("revision", options.get("revision"))
    # a sweep's records name the model name@revision (lmfacts.options.Target.label); the baseline keys both apart
    name = model.removesuffix(f"@{revision}") if revision else model
    model_table = {"name": name, "revision": revision,
                   "weight_format": entry.get("weight_format"), "quantization": entry.get("quantization"),
                   "dtype": dtype}
    measured_by = {"lmfacts": run.get("lmfacts_version"), "run_id": run.get("id"), "date": run.get("created_utc"),
                   "device": devices[0] if devices else None, "corpus_sha256": corpus.get("sha256"),
                   "n_prompts": corpus.get("n_probe_prompts", corpus.get("n_prompts")),
                   "probe_sample_tokens": options.get("probe_sample_tokens"),
                   "hypothesis_profile": (run.get("hypothesis") or {}).get("name"),
                   "prepends_bos": entry.get("prepends_bos")}
    claims: list[ClaimBaseline] = []
    left_out: list[str] = []
    for cid in sorted(by_claim, key=claim_sort_key):
        r = by_claim[cid]
        outcome, reason = _raw(r)
        if outcome not in RECORDED_OUTCOMES:
            left_out.append(f"{cid} ({outcome})")
            continue
        measured = r.get("measured") or {}
        values: list[HeadlineBaseline] = []
        for key in r.get("headline") or []:
            from lmfacts.claims import headline_value

            try:
                v = headline_value(measured, key)
            except KeyError:
                continue
            if not _finite(v):
                continue
            tol, why = tolerance_for(r, key, float(v), dtype)
            values.append(HeadlineBaseline(key, float(v), tol, why))
        claims.append(ClaimBaseline(cid, str(outcome), (reason or "failed") if outcome == "failed" else None,
                                    tuple(values), str(r.get("title") or "")))
    return dumps_baseline(model_table, measured_by, claims, left_out)


# -- TOML text ---------------------------------------------------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise BaselineFileError(f"non-finite value {v!r} cannot be written")
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)


def _table(pairs: dict[str, Any]) -> list[str]:
    return [f"{k} = {_toml_value(v)}" for k, v in pairs.items() if v is not None]


def dumps_baseline(model: dict[str, Any], measured_by: dict[str, Any], claims: list[ClaimBaseline],
                   left_out: list[str]) -> str:
    """The TOML text of a baseline file (deterministic: same inputs, same bytes)."""
    n_failed = sum(c.outcome == "failed" for c in claims)
    lines = [
        f"# lmfacts baseline for {model['name']}: written by `python -m lmfacts baseline record` from run "
        f"{measured_by.get('run_id')}; review it as a diff, re-record instead of editing numbers.",
        f"# {len(claims)} claims recorded: {len(claims) - n_failed} passed (headline values guarded), {n_failed} failed "
        "(strict expected failures: known findings).",
        "# Skips, errors and inconclusive results are not recorded (the catalogue's predicates decide them on every "
        "run); nor are headline values that are not finite scalars.",
        "# Not recorded from this run: " + (", ".join(left_out) if left_out else "none") + ".",
        "# tol: |value today - value| <= tol (absolute); tol_from: the rule that gave it (lmfacts.baselines).",
        f"schema = {SCHEMA}",
        "",
        "[model]",
        *_table(model),
        "",
        "[measured_by]",
        *_table(measured_by),
    ]
    for c in claims:
        lines += ["", "[[claim]]", *_table({"id": c.claim, "title": c.title or None, "outcome": c.outcome,
                                            "reason": c.reason})]
        for h in c.headline:
            lines += ["", "[[claim.headline]]", *_table({"key": h.key, "value": h.value, "tol": h.tol,
                                                         "tol_from": h.tol_from})]
    return "\n".join(lines) + "\n"


# -- loading ---------------------------------------------------------------------------------------------------
def _err(path: Path, where: str, msg: str) -> BaselineFileError:
    return BaselineFileError(f"{path}: {where}: {msg}")


def _check_keys(path: Path, where: str, table: Any, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
    if not isinstance(table, dict):
        raise _err(path, where, "must be a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise _err(path, f"{where}.{unknown[0]}", f"unknown key; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in table:
            raise _err(path, f"{where}.{key}", "missing")
    return table


def load_file(path: str | Path) -> Baseline:
    """Parse and validate one baseline file; raises :class:`BaselineFileError` naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BaselineFileError(f"{path}: invalid TOML: {exc}") from None
    _check_keys(path, "top level", data, ("schema", "model", "measured_by", "claim"), ("schema", "model", "claim"))
    if data["schema"] != SCHEMA:
        raise _err(path, "schema", f"must be {SCHEMA}")
    model = _check_keys(path, "model", data["model"], MODEL_KEYS, ("name", "dtype"))
    for key, value in model.items():
        if not isinstance(value, str) or not value:
            raise _err(path, f"model.{key}", "must be a non-empty string")
    measured_by = _check_keys(path, "measured_by", data.get("measured_by", {}), MEASURED_BY_KEYS, ())
    for key in ("n_prompts", "probe_sample_tokens"):
        if key in measured_by and (isinstance(measured_by[key], bool) or not isinstance(measured_by[key], int)):
            raise _err(path, f"measured_by.{key}", "must be an integer")
    if "prepends_bos" in measured_by and not isinstance(measured_by["prepends_bos"], bool):
        raise _err(path, "measured_by.prepends_bos", "must be true or false")
    if not isinstance(data["claim"], list):
        raise _err(path, "claim", "use [[claim]] tables")
    claims: dict[str, ClaimBaseline] = {}
    for i, raw in enumerate(data["claim"]):
        where = f"claim[{i}]"
        _check_keys(path, where, raw, CLAIM_KEYS, ("id", "outcome"))
        cid = raw["id"]
        if not isinstance(cid, str) or not cid:
            raise _err(path, f"{where}.id", "must be a claim id such as \"RN-1\"")
        where = f"claim[{i}] ({cid})"
        if cid in claims:
            raise _err(path, f"{where}.id", "recorded twice")
        if raw["outcome"] not in RECORDED_OUTCOMES:
            raise _err(path, f"{where}.outcome", f"{raw['outcome']!r} is not one of {RECORDED_OUTCOMES}")
        reason = raw.get("reason")
        if raw["outcome"] == "failed" and (not isinstance(reason, str) or not reason.strip()):
            raise _err(path, f"{where}.reason", "a recorded failure needs the finding as its reason")
        if raw["outcome"] == "passed" and reason is not None:
            raise _err(path, f"{where}.reason", "only a recorded failure has a reason")
        headline = raw.get("headline", [])
        if not isinstance(headline, list):
            raise _err(path, f"{where}.headline", "use [[claim.headline]] tables")
        values: list[HeadlineBaseline] = []
        for j, h in enumerate(headline):
            hw = f"{where}.headline[{j}]"
            _check_keys(path, hw, h, HEADLINE_KEYS, ("key", "value", "tol"))
            if not isinstance(h["key"], str) or not h["key"]:
                raise _err(path, f"{hw}.key", "must be a headline key (see the claim's headline=)")
            for k in ("value", "tol"):
                if not _finite(h[k]) or (k == "tol" and h[k] < 0):
                    raise _err(path, f"{hw}.{k}", f"{h[k]!r} must be a finite number" + (" ≥ 0" if k == "tol" else ""))
            if h["key"] in {v.key for v in values}:
                raise _err(path, f"{hw}.key", f"{h['key']!r} recorded twice")
            values.append(HeadlineBaseline(h["key"], float(h["value"]), float(h["tol"]), str(h.get("tol_from", ""))))
        claims[cid] = ClaimBaseline(cid, raw["outcome"], reason, tuple(values), str(raw.get("title", "")), i)
    return Baseline(str(path), dict(model), dict(measured_by), claims)


def default_dir() -> Path:
    """``$LMFACTS_BASELINES_DIR`` if set, else the built-in baselines.

    The built-in ones are ``fixtures/baselines`` of a checkout, ``lmfacts/fixtures/baselines`` of an
    installed wheel (:func:`lmfacts.resources.fixtures_dir`).
    """
    env = os.environ.get("LMFACTS_BASELINES_DIR")
    return Path(env) if env else fixtures_dir("baselines")


def load_all(directory: Path | None = None) -> list[Baseline]:
    """Every ``*.toml`` baseline in ``directory`` (sorted; none when it does not exist).

    Two files for the same model and configuration (name, revision, weight format, quantisation,
    dtype) raise :class:`BaselineFileError`.
    """
    directory = directory or default_dir()
    out: list[Baseline] = []
    seen: dict[tuple[Any, ...], str] = {}
    for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
        b = load_file(path)
        key = tuple(b.model.get(k) for k in MODEL_KEYS)
        if key in seen:
            raise BaselineFileError(f"{path}: model: {seen[key]} is a baseline of the same model and configuration "
                                    f"{dict(zip(MODEL_KEYS, key, strict=True))}")
        seen[key] = str(path)
        out.append(b)
    return out


def validate_claims(baselines: list[Baseline], specs: dict[str, Any]) -> None:
    """Check every recorded claim and headline key against the registered claims ``specs`` (by id).

    Claims of a family not collected (no spec with the same prefix) are not checked. Raises
    :class:`BaselineFileError` naming the file, the claim and the key.
    """
    families = {cid.split("-")[0] for cid in specs}
    for b in baselines:
        for c in b.claims.values():
            spec = specs.get(c.claim)
            if spec is None:
                if c.claim.split("-")[0] in families:
                    raise BaselineFileError(f"{b.file}: claim[{c.index}].id: unknown claim {c.claim!r}; "
                                            f"known: {', '.join(sorted(specs))}")
                continue
            for j, h in enumerate(c.headline):
                if h.key not in spec.headline:
                    raise BaselineFileError(
                        f"{b.file}: claim[{c.index}] ({c.claim}).headline[{j}].key: {h.key!r} is not a headline "
                        f"value of {c.claim}; its headline: {', '.join(spec.headline) or '(none)'}")
