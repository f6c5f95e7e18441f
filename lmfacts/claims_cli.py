"""``python -m lmfacts claims {list,show,docs}``: what the catalogue holds, read without running it.

* ``claims list [--json]`` — one row per registered claim: id, title, source, premises, processing
  (``raw`` / ``compat`` weights), inputs (``prompts`` / ``weights``).
* ``claims show ID [--model NAME] [--revision REV] [--json]`` — the claim's statistic, window and
  conventions (its docstring, and the ``ctx.statistic`` / ``ctx.conventions`` calls of its body, read
  from the source), its parameters (type, default, unit, meaning: ``ClaimSpec.schema``), headline
  values, premises, and the file and line of its measurement. With ``--model``: the expectation entries
  that apply to that model (:func:`lmfacts.expectations.resolve`) with their values and origins
  (``file#entry (kind: source)``), the model's recorded baseline for the claim, and each premise's
  verdict where the configuration alone decides it (:func:`lmfacts.premises.from_config`), else what
  its run-time check needs. The model's facts come from its configuration
  (:func:`lmfacts.models.metadata.config_facts`): no weights are read and torch is not imported.
* ``claims docs [--out FILE] [--check]`` — the catalogue as Markdown (``docs/catalogue.md``), generated
  from the registry, the docstrings and the expectation files.

Usage errors (unknown claim id, unknown model name) exit 2 with the valid ids / accepted model forms.
The claim modules are imported through :func:`load_catalogue`, the one place that knows where they are.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import pkgutil
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lmfacts.report.cli import UsageError

if TYPE_CHECKING:
    from lmfacts.claims import ClaimSpec

DOCS_COMMAND = "python -m lmfacts claims docs --out docs/catalogue.md"
DEPENDS = "depends on the configuration"  # an entry's applicability when the model's config is not readable
#: Modules whose functions a claim body calls that are not measurements (registry, context, premises).
_NOT_MEASURES = ("lmfacts.claims", "lmfacts.context", "lmfacts.premises", "lmfacts.expectations",
                 "lmfacts.catalogue")  # the claim modules' own helpers (installed under lmfacts.catalogue)
_CATALOGUE_PACKAGE: list[str] = []  # the package name the catalogue was imported under (filled once)


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------
def _catalogue_location() -> tuple[str, Path]:
    """(package name, directory) of the claim modules: ``claims`` in a checkout, ``lmfacts.catalogue`` installed.

    The name is the one pytest imports them under (``pytest claims/`` in a checkout: ``claims.test_…``),
    so the CLI and an in-process pytest run never register one claim under two module names.
    """
    try:
        from lmfacts.resources import catalogue_dir

        directory = catalogue_dir()
    except ImportError:  # an lmfacts without resources.py: the checkout layout
        directory = Path(__file__).resolve().parents[1] / "claims"
    return ("claims" if directory.name == "claims" else "lmfacts.catalogue"), directory


def load_catalogue() -> dict[str, ClaimSpec]:
    """Import every claim module of the built-in catalogue once; return its claims by id, in the report's
    claim order (:func:`lmfacts.report.outcomes.claim_sort_key`: RN, BF, RS, then the others).

    Uses ``lmfacts.claims.load_catalogue()`` when the registry provides one; otherwise imports the
    ``test_*`` modules of the catalogue package (:func:`_catalogue_location`), reusing the package if it
    is already imported. Claims registered elsewhere (a user's conftest, a test) are left out. Raises
    :class:`UsageError` when the catalogue directory is missing.
    """
    from lmfacts import claims as registry

    loader = getattr(registry, "load_catalogue", None)
    if callable(loader):
        loaded = loader()
        if isinstance(loaded, dict):
            return dict(loaded)
    if not _CATALOGUE_PACKAGE:
        name, directory = _catalogue_location()
        if not (directory / "__init__.py").is_file():
            raise UsageError(f"the claim catalogue is not where lmfacts expects it ({directory})")
        for other in ("claims", "lmfacts.catalogue"):  # already imported (by pytest) under either name: reuse it
            mod = sys.modules.get(other)
            if mod is not None and directory.resolve() in [Path(p).resolve() for p in getattr(mod, "__path__", [])]:
                name = other
        if name not in sys.modules and name == "claims" and str(directory.parent) not in sys.path:
            sys.path.insert(0, str(directory.parent))
        package = importlib.import_module(name)
        if directory.resolve() not in [Path(p).resolve() for p in getattr(package, "__path__", [])]:
            raise UsageError(f"`import {name}` found {list(getattr(package, '__path__', []))}, not the lmfacts "
                             f"catalogue in {directory} (another package of that name shadows it)")
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.name.startswith("test_"):
                importlib.import_module(f"{name}.{info.name}")
        _CATALOGUE_PACKAGE.append(name)
    from lmfacts.report.outcomes import claim_sort_key

    prefix = _CATALOGUE_PACKAGE[0] + "."
    # the report's claim order, not the registry's: which module a test session imported first must not matter
    ours = [cid for cid, spec in registry.CLAIMS.items() if spec.function.startswith(prefix)]
    return {cid: registry.CLAIMS[cid] for cid in sorted(ours, key=claim_sort_key)}


def _user_module_files(path: Path) -> list[Path]:
    """The modules pytest would collect claims from under ``path``: the file itself, or a directory's
    ``conftest.py`` files and ``test_*.py`` / ``*_test.py`` modules (recursively, sorted)."""
    if path.is_file():
        return [path]
    found = [p for p in path.rglob("*.py") if p.name == "conftest.py" or p.name.startswith("test_")
             or p.name.endswith("_test.py")]
    return sorted(found, key=lambda p: (len(p.relative_to(path).parts), p.name != "conftest.py", str(p)))


def load_user_claims(paths: list[str] | None) -> dict[str, ClaimSpec]:
    """Import the user's claim modules in ``paths`` (``--claims``: test modules, ``conftest.py`` files or
    directories of them, as ``pytest PATH`` would collect) so their ``@claim`` decorators register; return
    the claims they registered, by id, in the report's claim order.

    Each file is imported under a module name of its own (``lmfacts_user_claims.<stem>_<hash of path>``)
    with its directory on ``sys.path`` (pytest's default ``prepend`` import mode), so a module importing
    its neighbours works. Raises :class:`UsageError` for a path that does not exist, a ``.py`` file that
    fails to import (naming it and the exception), a path that registers no claim, or a claim id already
    registered by another function (the catalogue's ``RN-1`` …).
    """
    import hashlib
    import importlib.util

    from lmfacts import claims as registry
    from lmfacts.report.outcomes import claim_sort_key

    found: dict[str, ClaimSpec] = {}
    for text in paths or ():
        path = Path(text).expanduser()
        if not path.exists():
            raise UsageError(f"--claims {text}: no such file or directory")
        files = _user_module_files(path.resolve())
        if path.is_file() and path.suffix != ".py":
            raise UsageError(f"--claims {text}: not a Python file (a test module, a conftest.py or a directory)")
        for file in files:
            name = f"lmfacts_user_claims.{file.stem}_{hashlib.sha256(str(file).encode()).hexdigest()[:10]}"
            if name in sys.modules:
                continue
            if str(file.parent) not in sys.path:
                sys.path.insert(0, str(file.parent))
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise UsageError(f"--claims {text}: cannot import {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - the user's module: report what it raised, no traceback
                del sys.modules[name]
                raise UsageError(f"--claims {text}: importing {file} raised {type(exc).__name__}: {exc}") from None
        mine = {cid: s for cid, s in registry.CLAIMS.items() if s.function.startswith("lmfacts_user_claims.")
                and Path(inspect.getsourcefile(claim_function(s)) or "").resolve() in files}
        if not mine:
            raise UsageError(f"--claims {text}: registers no claim (no @claim-decorated test in "
                             f"{', '.join(str(f) for f in files) or 'it'})")
        found.update(mine)
    return {cid: found[cid] for cid in sorted(found, key=claim_sort_key)}


def _with_user_claims(catalogue: dict[str, ClaimSpec], paths: list[str] | None) -> dict[str, ClaimSpec]:
    """``catalogue`` plus the claims of ``--claims`` paths (:func:`load_user_claims`)."""
    try:
        user = load_user_claims(paths)
    except ValueError as exc:  # the registry refuses a claim id registered twice (e.g. the user's RN-1)
        raise UsageError(f"--claims: {exc}") from None
    return {**catalogue, **user}


def get_spec(claim_id: str, catalogue: dict[str, ClaimSpec]) -> ClaimSpec:
    """The claim ``claim_id`` (case-insensitive); :class:`UsageError` naming the valid ids otherwise."""
    wanted = claim_id.strip()
    cid = wanted if wanted in catalogue else {c.upper(): c for c in catalogue}.get(wanted.upper())
    if cid is None:
        raise UsageError(f"unknown claim id {claim_id!r}; valid ids: {', '.join(catalogue)} "
                         f"(`python -m lmfacts claims list` shows them with their titles; a claim of your own: "
                         f"pass the test module or directory that registers it with --claims PATH)")
    return catalogue[cid]


def claim_function(spec: ClaimSpec) -> Callable[..., Any]:
    """The test function registered as ``spec`` (``spec.function`` is ``module.qualname``)."""
    module_name, _, qualname = spec.function.rpartition(".")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _root() -> Path:
    return Path(__file__).resolve().parents[1]


def rel_path(path: str | Path) -> str:
    """``path`` relative to the directory holding the ``lmfacts`` package (the repository root), if inside."""
    p = Path(path).resolve()
    try:
        return p.relative_to(_root()).as_posix()
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------------------------
# What the source says (no model)
# --------------------------------------------------------------------------------------------
def _value_text(node: ast.expr) -> tuple[Any, bool]:
    """(value, is_literal): a literal's value, else the expression's source (computed at run time)."""
    try:
        return ast.literal_eval(node), True
    except (ValueError, SyntaxError, TypeError):
        return ast.unparse(node), False


def _function_node(fn: Callable[..., Any]) -> tuple[ast.FunctionDef, int]:
    """The parsed ``def`` of ``fn`` and the line number of its first source line in the file."""
    lines, start = inspect.getsourcelines(fn)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    return node, start  # type: ignore[return-value]


def _callee(fn: Callable[..., Any], call: ast.Call) -> Any:
    """The object a call in ``fn``'s body names (``mod.func`` or ``func`` in its globals), or None."""
    g = fn.__globals__  # type: ignore[attr-defined]
    f = call.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and isinstance(g.get(f.value.id), ModuleType):
        return getattr(g[f.value.id], f.attr, None)
    if isinstance(f, ast.Name):
        return g.get(f.id)
    return None


def source_facts(spec: ClaimSpec) -> dict[str, Any]:
    """What the claim's source says without running it.

    Returns ``{"file", "line", "function", "docstring", "statistic", "conventions", "measures"}``:
    ``line`` is the ``def`` line of the test function; ``statistic`` / ``conventions`` are the
    arguments of the body's ``ctx.statistic(...)`` / ``ctx.conventions(...)`` calls (a literal's value,
    else the expression's source, marked computed); ``measures`` lists the lmfacts library functions
    the body calls (``{"name", "file", "line"}``). A call made inside a helper is not seen (the
    record of a run has it).
    """
    fn = claim_function(spec)
    node, start = _function_node(fn)
    statistic: list[dict[str, Any]] = []
    conventions: dict[str, dict[str, Any]] = {}
    measures: dict[str, dict[str, Any]] = {}
    body = [n for stmt in node.body for n in ast.walk(stmt)]  # not the decorators (the registration)
    for call in body:
        if not isinstance(call, ast.Call):
            continue
        f = call.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "ctx":
            if f.attr == "statistic" and call.args:
                value, literal = _value_text(call.args[0])
                statistic.append({"text": value, "computed": not literal})
            elif f.attr == "conventions":
                for kw in call.keywords:
                    if kw.arg is not None:
                        value, literal = _value_text(kw.value)
                        conventions.setdefault(kw.arg, {"value": value, "computed": not literal})
            continue
        obj = _callee(fn, call)
        mod = getattr(obj, "__module__", None) or ""
        if not (inspect.isfunction(obj) and mod.startswith("lmfacts.") and not mod.startswith(_NOT_MEASURES)):
            continue
        name = f"{mod}.{obj.__qualname__}"
        if name not in measures:
            try:
                _, line = inspect.getsourcelines(obj)
                measures[name] = {"name": name, "file": rel_path(inspect.getsourcefile(obj) or ""), "line": line}
            except (OSError, TypeError):
                measures[name] = {"name": name, "file": None, "line": None}
    return {"file": rel_path(inspect.getsourcefile(fn) or ""), "line": start + node.lineno - 1,
            "function": fn.__name__, "docstring": inspect.cleandoc(fn.__doc__ or ""),
            "statistic": statistic, "conventions": conventions,
            "measures": sorted(measures.values(), key=lambda m: m["name"])}


def _is_required(value: Any) -> bool:
    from lmfacts.claims import REQUIRED

    return value is REQUIRED


def _default_json(value: Any) -> Any:
    return "REQUIRED" if _is_required(value) else value


def param_rows(spec: ClaimSpec) -> list[dict[str, Any]]:
    """The claim's declared parameters: ``{"name", "type", "default", "unit", "meaning"}`` (JSON-ready)."""
    return [{"name": p.name, "type": p.type_name, "default": _default_json(p.default), "unit": p.unit,
             "meaning": p.meaning} for p in spec.params]


def premise_rows(spec: ClaimSpec) -> list[dict[str, str]]:
    """The claim's premises with their statements (:data:`lmfacts.premises.PREMISES`)."""
    from lmfacts.premises import PREMISES

    return [{"name": n, "statement": PREMISES[n].statement} for n in spec.requires]


def summary_row(spec: ClaimSpec) -> dict[str, Any]:
    """One ``claims list`` row: id, title, source, premises, processing, inputs, headline, function."""
    return {"id": spec.id, "title": spec.title, "source": spec.source, "premises": list(spec.requires),
            "processing": spec.processing, "inputs": spec.inputs, "headline": list(spec.headline),
            "function": spec.function}


# --------------------------------------------------------------------------------------------
# What a model gets (configuration only)
# --------------------------------------------------------------------------------------------
def _load_expectations(catalogue: dict[str, ClaimSpec], paths: list[str] | None = None) -> list[Any]:
    """The built-in expectation entries plus those of ``paths`` (``--expectations`` files or directories),
    loaded and validated against the catalogue's parameter schemas as a run loads them
    (:func:`lmfacts.expectations.load_all`, ``validate_params``); :class:`UsageError` naming the file otherwise."""
    from lmfacts import expectations

    try:
        entries = expectations.load_all(extra=paths or ())
        expectations.validate_params(entries, catalogue)
    except expectations.ExpectationFileError as exc:
        raise UsageError(str(exc)) from None
    return entries


def _entry_name(e: Any) -> str:
    """``rn.toml#0``: the entry as origins name it (a user's file: the path as given)."""
    return f"{e.name}#{e.index}"


def _match_text(match: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in match.items())


def model_view(spec: ClaimSpec, model: str, revision: str | None = None,
               extra_expectations: list[str] | None = None,
               catalogue: dict[str, ClaimSpec] | None = None) -> dict[str, Any]:
    """What ``spec`` expects of ``model``, from its configuration alone (no weights read).

    ``extra_expectations``: expectation files or directories added to the built-in ones;
    ``catalogue``: the claims whose schemas validate the entries (default: ``spec`` alone).
    Returns ``{"model", "facts", "facts_error", "entries", "resolved", "xfail", "skip", "premises",
    "baselines"}``. ``entries``: every expectation entry of the claim with ``applies`` = ``"yes"`` /
    ``"no"`` / ``"depends on the configuration"`` (only when the configuration cannot be read: entries
    matching by name are still decided) and its level. ``resolved``: ``{param: {"value", "origin",
    "unit"}}`` as :func:`lmfacts.expectations.resolve` merges them (the report's ``params``).
    ``premises``: ``{"name", "holds" (True / False / None = decided at run time), "evidence"}``.

    Raises :class:`UsageError` for a model name matching no accepted form (the message lists them) and for a
    model file that cannot be read (a truncated or corrupt GGUF: it would fail the same way in a run).
    """
    from lmfacts import premises as premise_mod
    from lmfacts.expectations import LEVELS, ExpectationFileError, ModelFacts, resolve
    from lmfacts.models.metadata import config_facts
    from lmfacts.models.names import ModelUnavailableError, UnknownModelError, parse_model_name

    try:
        ref = parse_model_name(model)
    except UnknownModelError as exc:
        raise UsageError(f"--model: {exc}") from None
    entries = [e for e in _load_expectations(catalogue or {spec.id: spec}, extra_expectations) if e.claim == spec.id]
    facts_error = None
    from lmfacts.models.support import UnreadableModelFileError, check_model_files

    try:
        if ref.kind == "local-dir":  # a truncated config.json / tokenizer / safetensors file, as pytest reports it
            check_model_files(model, ref.target)
        cfg = config_facts(model, revision)
    except UnreadableModelFileError as exc:  # the file is there and broken: the user must fix it
        raise UsageError(f"--model: {exc}") from None
    except ModelUnavailableError as exc:  # not readable *here* (no cache, no package): answer what can be
        cfg, facts_error = None, str(exc)
    out: dict[str, Any] = {"model": model, "facts": None, "facts_error": facts_error, "entries": [],
                           "resolved": {}, "xfail": None, "skip": None, "premises": [], "baselines": []}
    if cfg is not None:
        facts = cfg.model_facts()
        out["facts"] = {"names": list(facts.names), "architecture": facts.architecture,
                        "architecture_class": cfg.architecture_class, "is_encoder": facts.is_encoder,
                        "normalization": cfg.normalization, "quantization": cfg.quantization,
                        "source": cfg.source, "evidence": dict(cfg.evidence),
                        "encoder_decoder": _encoder_decoder(ref)}
        applicable = entries
    else:
        facts = ModelFacts(names=tuple(dict.fromkeys((model, ref.display_name, ref.target))), architecture="",
                           is_encoder=False, normalization="", quantized=False)
        applicable = [e for e in entries if "models" in e.match]
    for e in entries:
        level = e.level(facts)
        if cfg is None and "models" not in e.match:
            applies = DEPENDS
        else:
            applies = "yes" if level is not None else "no"
        out["entries"].append({"entry": _entry_name(e), "file": rel_path(e.file),
                               "kind": e.kind, "source": e.source, "match": dict(e.match),
                               "level": LEVELS[level] if level is not None else None, "applies": applies,
                               "params": dict(e.params), "xfail": e.xfail, "skip": e.skip})
    try:
        resolved = resolve(applicable, spec.id, facts, spec)
    except ExpectationFileError as exc:
        out["resolve_error"] = str(exc)
    else:
        out["resolved"] = resolved.describe()
        out["xfail"], out["skip"] = resolved.xfail, resolved.skip
        by_name = {k for e in applicable for k in e.params}
        for e in out["entries"]:  # without a configuration: what a predicate entry could still set
            if e["applies"] == DEPENDS:
                for key in set(e["params"]) - by_name:
                    row = out["resolved"][key]
                    row["origin"] += f", unless {e['entry']} applies ({_match_text(e['match'])}: {e['params'][key]!r})"
    for name in spec.requires:
        verdict = premise_mod.from_config(name, cfg) if cfg is not None else None
        if verdict is None:
            needs = premise_mod.RUNTIME_NEEDS.get(name, "the loaded model")
            hint = premise_mod.config_hint(name, cfg) if cfg is not None else ""
            out["premises"].append({"name": name, "holds": None,
                                    "evidence": f"decided at run time: needs {needs}" + (f"; {hint}" if hint else "")})
        else:
            out["premises"].append({"name": name, "holds": verdict.holds, "evidence": verdict.evidence})
    out["baselines"] = _baseline_rows(spec, facts.names)
    return out


def _baseline_rows(spec: ClaimSpec, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The recorded baselines (:mod:`lmfacts.baselines`) of a model named in ``names`` for this claim."""
    from lmfacts.baselines import BaselineFileError, load_all

    try:
        baselines = load_all()
    except BaselineFileError as exc:
        return [{"error": str(exc)}]
    rows = []
    for b in baselines:
        if b.name not in names:
            continue
        c = b.claims.get(spec.id)
        rows.append({"file": rel_path(b.file), "model": dict(b.model),
                     "outcome": c.outcome if c else None, "reason": c.reason if c else None,
                     "headline": [{"key": h.key, "value": h.value, "tol": h.tol} for h in c.headline] if c else []})
    return rows


def latest_report(claim_id: str, names: tuple[str, ...] = (), report_dir: str | Path = "reports",
                  max_runs: int = 20) -> dict[str, Any] | None:
    """The newest run under ``report_dir`` (the pytest ``--report-dir`` default, relative to the current
    directory) that recorded ``claim_id`` (on a model named in ``names``, when given).

    Returns ``{"run", "model", "outcome", "reason"}`` or None; looks at the ``max_runs`` newest runs'
    ``results.jsonl`` only (a line is parsed only when it names the claim).
    """
    from lmfacts.report.paths import RESULTS_JSONL, list_runs

    needle = json.dumps({"claim": claim_id})[1:-1]  # '"claim": "RN-1"'
    for run in reversed(list_runs(report_dir)[-max_runs:]):
        path = run / RESULTS_JSONL
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if needle not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("claim") == claim_id and (not names or rec.get("model") in names):
                    return {"run": rel_path(run) if Path(run).is_absolute() else str(run),
                            "model": rec.get("model"), "outcome": rec.get("outcome"), "reason": rec.get("reason")}
    return None


# --------------------------------------------------------------------------------------------
# Text rendering
# --------------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if _is_required(value) or value == "REQUIRED":
        return "REQUIRED"
    if value is None:
        return "unset"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _tilde(text: str) -> str:
    """``text`` with the home directory written ``~`` (cache paths in evidence)."""
    return text.replace(str(Path.home()), "~")


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


def format_list(catalogue: dict[str, ClaimSpec]) -> str:
    """The ``claims list`` text: per claim a line ``id  weights  inputs  title`` and one of source and premises."""
    width = max((len(s.id) for s in catalogue.values()), default=2)
    lines = [f"{'id':<{width}}  weights  inputs   title", f"{'':<{width}}  source · premises"]
    for s in catalogue.values():
        lines.append(f"{s.id:<{width}}  {s.processing:<7}  {s.inputs:<7}  {s.title}")
        lines.append(f"{'':<{width}}  {s.source} · premises: {', '.join(s.requires) or 'none'}")
    lines.append(f"\n{len(catalogue)} claims. Details: python -m lmfacts claims show ID [--model NAME]")
    return "\n".join(lines)


def describe(spec: ClaimSpec) -> dict[str, Any]:
    """Everything ``claims show`` says without a model (JSON-ready)."""
    return {**summary_row(spec), "params": param_rows(spec), "premise_statements": premise_rows(spec),
            "measurement": source_facts(spec)}


def format_show(d: dict[str, Any], view: dict[str, Any] | None) -> str:
    """The ``claims show`` text for :func:`describe` output ``d`` and :func:`model_view` output ``view``."""
    m = d["measurement"]
    lines = [f"{d['id']}: {d['title']}", f"source:      {d['source']}",
             f"measured in: {m['file']}:{m['line']}  ({m['function']}; "
             f"{d['processing']} weights, measures on {d['inputs']})"]
    for x in m["measures"]:
        lines.append(f"  calls      {x['file']}:{x['line']}  ({x['name']})")
    lines.append(f"headline:    {', '.join(d['headline']) or '-'}")
    rep = d.get("reported")
    lines.append("reported in: reports/<run-id>/report.{md,html,json,csv} (rendering: lmfacts/report/); " +
                 (f"latest here: {rep['run']} ({rep['model']}: {rep['outcome']})" if rep else "no run of it here yet"))
    lines.append("")
    lines += ["statistic, window and conventions (docstring):", textwrap.indent(m["docstring"], "  ") or "  -"]
    if m["statistic"] or m["conventions"]:
        lines.append("recorded by the body (ctx.statistic / ctx.conventions):")
        for s in m["statistic"]:
            lines.append(f"  statistic: {s['text']}" + ("  [computed at run time]" if s["computed"] else ""))
        for k, v in m["conventions"].items():
            lines.append(f"  {k}: {v['value']}" + ("  [computed at run time]" if v["computed"] else ""))
    lines.append("")
    if d["params"]:
        lines.append("parameters (declared defaults; expectation entries override them):")
        lines += ["  " + r for r in _table([[p["name"], p["type"], _fmt(p["default"]), p["unit"] or "-", p["meaning"]]
                                            for p in d["params"]], ["name", "type", "default", "unit", "meaning"])]
    else:
        lines.append("parameters: none")
    lines.append("")
    premises_by_name = {p["name"]: p for p in (view or {}).get("premises", [])}
    lines.append("premises (checked on the model before the body runs; a premise that fails skips the claim):"
                 if d["premise_statements"] else "premises: none")
    for p in d["premise_statements"]:
        lines.append(f"  {p['name']}: {p['statement']}")
        v = premises_by_name.get(p["name"])
        if v is not None and view is not None:
            verdict = {True: "holds: ", False: "DOES NOT HOLD (the claim will be skipped): ", None: ""}[v["holds"]]
            lines.append(f"      {view['model']}: {verdict}{_tilde(v['evidence'])}")
    if view is not None:
        lines += ["", *format_model_view(d, view)]
    return "\n".join(lines).rstrip() + "\n"


def _encoder_decoder(ref: Any) -> str | None:
    """Where the config of ``ref`` (a local directory, or a hub id's cached config) says the model is an
    encoder-decoder, which no run can measure (:func:`lmfacts.models.support.encoder_decoder_evidence`, from the
    config's own ``is_encoder_decoder`` or a legacy architecture name); else None. Reads config.json only (neither
    torch nor transformers is imported); None when it is not readable here."""
    from lmfacts.models import hub
    from lmfacts.models.support import encoder_decoder_evidence

    if ref.kind == "local-dir":
        path: Path | None = Path(ref.target) / "config.json"
    elif ref.kind == "hub":
        path = hub.cached_config_path(ref.target, None)
    else:
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        return None
    evidence = encoder_decoder_evidence(config, class_default=False) if isinstance(config, dict) else None
    return f"{path}: {evidence}" if evidence else None


def format_model_view(d: dict[str, Any], view: dict[str, Any]) -> list[str]:
    """The ``--model`` part of ``claims show``."""
    lines = [f"model {view['model']} (from its configuration; no weights loaded):"]
    f = view["facts"]
    if f is None:
        lines.append(f"  configuration not readable here: {view['facts_error']}".replace("\n", "\n  "))
        lines.append("  entries that match by name are decided; the others depend on the configuration")
    else:
        ev = {k: _tilde(v) for k, v in f["evidence"].items()}
        lines += [f"  names:         {', '.join(dict.fromkeys(f['names']))}",
                  f"  architecture:  {f['architecture']}  ({ev.get('architecture')})",
                  f"  encoder:       {'yes' if f['is_encoder'] else 'no'}  ({ev.get('is_encoder')})",
                  f"  normalization: {f['normalization'] or 'unknown'}  ({ev.get('normalization')})",
                  f"  quantization:  {f['quantization'] or 'none (float weights)'}  ({ev.get('quantization')})"]
        if f.get("encoder_decoder"):
            lines.append(f"  runnable:      no: an encoder-decoder ({_tilde(f['encoder_decoder'])}); every claim "
                         "measures one stack of blocks, so a run stops with a usage error")
    lines.append("")
    lines.append(f"expectation entries for {d['id']} (most specific wins: models > architectures > predicate > "
                 "default):")
    if not view["entries"]:
        lines.append("  none: only the claim's declared defaults apply")
    for e in view["entries"]:
        extra = "".join(f"; {k} = {e[k]!r}" for k in ("xfail", "skip") if e[k])
        lines.append(f"  {e['entry']:<12} applies: {e['applies']:<3}  {e['kind']}: {e['source']}")
        lines.append(f"  {'':<12} match {{{_match_text(e['match'])}}}  file {e['file']}")
        if e["params"] or extra:
            lines.append(f"  {'':<12} params {json.dumps(e['params'])}{extra}")
    if "resolve_error" in view:
        lines.append(f"  resolution error: {view['resolve_error']}")
    lines.append("")
    if view["resolved"]:
        note = "" if view["facts"] is not None else " (by name and the claim's defaults; the configuration decides the rest)"
        lines.append(f"parameters for {view['model']}{note}:")
        lines += ["  " + r for r in _table([[k, _fmt(v["value"]), v["unit"] or "-", v["origin"]]
                                            for k, v in view["resolved"].items()],
                                           ["name", "value", "unit", "origin"])]
    if view["skip"]:
        lines.append(f"  skipped for this model: {view['skip']}")
    if view["xfail"]:
        lines.append(f"  expected to fail (strict): {view['xfail']}")
    lines.append("")
    if not view["baselines"]:
        lines.append(f"recorded baseline: none for {view['model']} (the catalogue's predicates alone judge it)")
    for b in view["baselines"]:
        if "error" in b:
            lines.append(f"recorded baseline: unreadable: {b['error']}")
            continue
        cfg = ", ".join(f"{k} {b['model'][k]}" for k in ("dtype", "weight_format", "revision") if b["model"].get(k))
        lines.append(f"recorded baseline {b['file']} ({cfg}):")
        if b["outcome"] is None:
            lines.append(f"  {d['id']} not recorded (it was skipped, errored or inconclusive in the recorded run)")
            continue
        head = ", ".join(f"{h['key']} = {h['value']:.6g} ± {h['tol']:.2g}" for h in b["headline"]) or "no headline"
        lines.append(f"  {b['outcome']}: {head}" + (f"; finding: {b['reason']}" if b["reason"] else ""))
    return lines


# --------------------------------------------------------------------------------------------
# docs/catalogue.md
# --------------------------------------------------------------------------------------------
def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_value(value: Any) -> str:
    return f"`{_fmt(value)}`" if value is not None and not _is_required(value) else _fmt(value)


def _anchor(cid: str) -> str:
    return cid.lower()


def render_docs(catalogue: dict[str, ClaimSpec]) -> str:
    """``docs/catalogue.md``: every claim with its docstring, parameters, premises, source and expectations.

    Deterministic: no absolute paths, no line numbers, no dates (so it changes only with the catalogue).
    """
    from lmfacts.premises import PREMISES
    from lmfacts.report.outcomes import claim_sort_key

    catalogue = {cid: catalogue[cid] for cid in sorted(catalogue, key=claim_sort_key)}
    entries = _load_expectations(catalogue)
    out = ["# The claim catalogue", "",
           f"<!-- generated by `{DOCS_COMMAND}` from the claim registry, the docstrings and the expectation "
           "files; do not edit by hand (tests/test_claims_cli.py checks it is current) -->", "",
           "Every claim is a pytest test registered with `@claim(...)`; `pytest claims/ -k ID --model NAME` runs "
           "it. `python -m lmfacts claims show ID --model NAME` says what it expects of a given model. "
           "*weights*: the weight processing it measures under (`raw` HF weights, `compat`: TransformerLens "
           "folding); *inputs*: `prompts` (corpus, Hypothesis examples) or `weights` alone.", "",
           "| id | title | source | weights | inputs | premises |", "|---|---|---|---|---|---|"]
    for s in catalogue.values():
        out.append(f"| [{s.id}](#{_anchor(s.id)}) | {_md(s.title)} | {_md(s.source)} | {s.processing} | "
                   f"{s.inputs} | {', '.join(f'`{p}`' for p in s.requires) or '–'} |")
    used = sorted({p for s in catalogue.values() for p in s.requires})
    out += ["", "## Premises", "", "| premise | statement |", "|---|---|"]
    out += [f"| `{p}` | {_md(PREMISES[p].statement)} |" for p in used]
    for s in catalogue.values():
        m = source_facts(s)
        out += ["", f"## {s.id}", "", f"**{_md(s.title)}** — {s.source}", "",
                f"- measured in `{m['file']}` (`{m['function']}`), {s.processing} weights, on {s.inputs}",
                f"- headline: {', '.join(f'`{h}`' for h in s.headline) or '–'}",
                f"- premises: {', '.join(f'`{p}`' for p in s.requires) or '–'}"]
        if m["measures"]:
            calls = ", ".join(f"`{x['name']}`" for x in m["measures"])
            out.append(f"- calls: {calls}")
        out += ["", textwrap.indent(m["docstring"], "> ", lambda _line: True) if m["docstring"] else "> –"]
        if s.params:
            out += ["", "| parameter | type | default | unit | meaning |", "|---|---|---|---|---|"]
            out += [f"| `{p.name}` | `{_md(p.type_name)}` | {_md(_md_value(p.default))} | {_md(p.unit) or '–'} | "
                    f"{_md(p.meaning)} |" for p in s.params]
        mine = [e for e in entries if e.claim == s.id]
        if mine:
            out += ["", "| expectation | kind | source | match | params | note |", "|---|---|---|---|---|---|"]
            for e in mine:
                note = "; ".join(f"{k}: {v}" for k, v in (("xfail", e.xfail), ("skip", e.skip)) if v)
                out.append(f"| {_entry_name(e)} | {e.kind} | {_md(e.source)} | "
                           f"`{_md(_match_text(e.match))}` | {_md(_param_text(e.params)) or '–'} | {_md(note) or '–'} |")
        else:
            out += ["", "No expectation entry: every model gets the declared defaults."]
    return "\n".join(out) + "\n"


def _param_text(params: dict[str, Any]) -> str:
    return ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in params.items())


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    """Print the catalogue: a table, or with ``--json`` a JSON list of :func:`summary_row` dicts with params."""
    catalogue = _with_user_claims(load_catalogue(), args.claims)
    if args.json:
        print(json.dumps([{**summary_row(s), "params": param_rows(s)} for s in catalogue.values()], indent=2))
    else:
        print(format_list(catalogue))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one claim (and with ``--model`` what it expects of that model); 2 for an unknown id or model."""
    catalogue = _with_user_claims(load_catalogue(), args.claims)
    spec = get_spec(args.claim_id, catalogue)
    d = describe(spec)
    view = model_view(spec, args.model, args.revision, args.expectations, catalogue) if args.model else None
    names = tuple(view["facts"]["names"]) if view and view["facts"] else ((args.model,) if args.model else ())
    d["reported"] = latest_report(spec.id, names, args.report_dir)
    if args.json:
        print(json.dumps({**d, "model": view}, indent=2, default=str))
    else:
        sys.stdout.write(format_show(d, view))
    if view is not None and view.get("facts_error"):  # exit 0: answered what can be without the configuration
        print(f"lmfacts: note: the configuration of {args.model!r} is not readable here, so only expectation "
              f"entries matching it by name are decided (see 'configuration not readable' above): "
              f"{str(view['facts_error']).splitlines()[0]}", file=sys.stderr)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Write (``--out``) or print the catalogue as Markdown; with ``--check`` exit 1 when ``--out`` is stale."""
    text = render_docs(load_catalogue())
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else None
        if current != text:
            print(f"{out} is not current: run `{DOCS_COMMAND}`", file=sys.stderr)
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(out)
    return 0


def add_claims_command(sub: argparse._SubParsersAction) -> None:
    """Register ``claims list`` / ``claims show`` / ``claims docs`` on the top-level subparsers."""
    p = sub.add_parser("claims", help="the catalogue: list claims, show one (and what it expects of a model)")
    csub = p.add_subparsers(dest="claims_command", metavar="{list,show,docs}")
    csub.required = True
    ls = csub.add_parser("list", help="one row per claim: id, weights, inputs, title, source, premises")
    ls.add_argument("--json", action="store_true", help="print a JSON list (with each claim's parameters)")
    ls.add_argument("--claims", action="append", default=None, metavar="PATH",
                    help="also your own claims: a test module, conftest.py or directory registering them (repeatable)")
    ls.set_defaults(func=cmd_list)
    sh = csub.add_parser("show", help="a claim's statistic, parameters, premises and where it is measured")
    sh.add_argument("claim_id", metavar="ID", help="a claim id, e.g. RN-1 (see `claims list`)")
    sh.add_argument("--model", default=None,
                    help="also say what the claim expects of this model (read from its configuration, no weights)")
    sh.add_argument("--revision", default=None, help="HF revision of a hub model (its cached config.json)")
    sh.add_argument("--expectations", action="append", default=None, metavar="PATH",
                    help="extra expectation files or directories (repeatable), as the pytest option")
    sh.add_argument("--report-dir", default="reports",
                    help="where runs are written (default reports/): the latest run of the claim is named")
    sh.add_argument("--json", action="store_true", help="print JSON instead of text")
    sh.add_argument("--claims", action="append", default=None, metavar="PATH",
                    help="a test module, conftest.py or directory registering your own claims (repeatable)")
    sh.set_defaults(func=cmd_show)
    dc = csub.add_parser("docs", help="the catalogue as Markdown (docs/catalogue.md)")
    dc.add_argument("--out", default=None, help="write here (default: print)")
    dc.add_argument("--check", action="store_true", help="do not write: exit 1 when --out is not current")
    dc.set_defaults(func=cmd_docs)


__all__ = ["add_claims_command", "describe", "load_catalogue", "model_view", "render_docs"]
