"""The lmfacts pytest plugin: options, parametrisation over (model, device), records, the report.

Registered through the ``pytest11`` entry point (and by the root ``conftest.py`` in an
un-installed checkout). Importing it never imports torch or transformer_lens.
"""

from __future__ import annotations

import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import ReprFileLocation, TerminalRepr

from lmfacts.claims import ClaimSpec
from lmfacts.context import ClaimContext
from lmfacts.options import Target, add_options, read_options
from lmfacts.report.recorder import USER_PROPERTY, ClaimRecord

SESSION_KEY = pytest.StashKey["Any"]()
RECORD_KEY = pytest.StashKey[ClaimRecord]()
BASELINES_KEY = pytest.StashKey["list[Any]"]()  # the loaded baseline files (lmfacts.baselines); absent: --no-baselines
MODEL_PROPERTY = "lmfacts_model"
REPO_DIR = Path(__file__).resolve().parents[1]


def _register_hypothesis_profiles() -> None:
    """Register lmfacts's profiles before Hypothesis's plugin loads ``--hypothesis-profile NAME``.

    The short names (``dev``, ``ci``, ``nightly``) are registered too, so Hypothesis's own plugin
    accepts them; ``ci`` thereby replaces Hypothesis's built-in "ci" profile with lmfacts's, and
    lmfacts loads its selected profile explicitly again in ``pytest_configure``.
    """
    from hypothesis import settings

    from lmfacts.profiles import PROFILE_ALIASES, register_profiles

    register_profiles()
    for short, full in PROFILE_ALIASES.items():
        settings.register_profile(short, parent=settings.get_profile(full))


_register_hypothesis_profiles()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _load_hypothesis_profile(config: pytest.Config) -> dict[str, Any]:
    """Load the selected profile and describe it for ``run.json``, with the command that replays a test.

    ``replay`` is this run's command (its options, not its test paths) with the Hypothesis options
    that draw the same examples again; a failing test's replay command is ``replay`` followed by
    its id, taken relative to ``replay_rootdir`` (where the run was started, relative to the
    rootdir that test ids are relative to).
    """
    from lmfacts.profiles import load_profile, register_profiles, replay_options, select_profile

    register_profiles()
    try:
        name = select_profile(config.getoption("hypothesis_profile", None), os.environ)
        info = load_profile(name, seed=config.getoption("hypothesis_seed", None))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if info["replay_args"]:
        kept = replay_options(list(config.invocation_params.args), [str(a) for a in config.args])
        # the interpreter that ran this session: a bare `pytest` is often not on PATH (an unactivated venv)
        info["replay"] = shlex.join([sys.executable, "-m", "pytest", *kept, *info["replay_args"]])
        info["replay_rootdir"] = Path(os.path.relpath(config.rootpath, config.invocation_params.dir)).as_posix()
    return info


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give a randomised Hypothesis profile a recorded seed, so a run can be replayed exactly.

    Runs before Hypothesis's own plugin reads ``--hypothesis-seed``: the controller draws a seed
    (unless one was given) and xdist workers take the controller's. A derandomised profile (the
    default) gets none: its examples do not depend on a seed. An unknown profile name is a usage error.
    """
    import secrets

    from lmfacts.profiles import resolve_profile_name, select_profile

    try:
        name = resolve_profile_name(select_profile(config.getoption("hypothesis_profile", None), os.environ))
    except ValueError as exc:
        # now, before Hypothesis's own pytest_configure (which runs after this one) loads
        # --hypothesis-profile itself and ends the run with an INTERNALERROR traceback on an unknown name
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("hypothesis_seed", None) is not None:
        return
    worker_seed = getattr(config, "workerinput", {}).get("lmfacts_hypothesis_seed")
    if worker_seed is not None:
        config.option.hypothesis_seed = worker_seed
        return
    from hypothesis import settings

    if not settings.get_profile(name).derandomize:
        config.option.hypothesis_seed = str(secrets.randbelow(2**32))


@pytest.hookimpl(trylast=True, specname="pytest_configure")
def pytest_configure_session(config: pytest.Config) -> None:
    """Validate the options (usage errors before any test runs) and hang the session on the config."""
    config.addinivalue_line("markers", "lmfacts_claim(spec): the catalogue claim a test measures (set by @claim)")
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") in ("no", "load"):
        config.option.dist = "loadgroup"  # one model's tests go to one worker
    from lmfacts.expectations import ExpectationFileError
    from lmfacts.report.paths import git_short_sha, new_run_id
    from lmfacts.session import LmfactsSession

    options = read_options(config)
    profile = _load_hypothesis_profile(config)
    worker = _is_worker(config)
    if not worker:  # an architecture TransformerBridge cannot boot is a usage error, read from config.json
        from lmfacts.models.support import (
            UnreadableModelFileError,
            UnsupportedArchitectureError,
            UnusableTokenizerError,
            preflight,
        )

        try:
            preflight(options.models, revisions=options.revisions, trust_remote_code=options.trust_remote_code)
        except (UnsupportedArchitectureError, UnreadableModelFileError, UnusableTokenizerError) as exc:
            raise pytest.UsageError(str(exc)) from None
    run_id = config.workerinput.get("lmfacts_run_id", "worker") if worker else new_run_id(
        git_sha=git_short_sha(REPO_DIR))
    command = "pytest " + " ".join(shlex.quote(a) for a in config.invocation_params.args)
    try:
        session = LmfactsSession(options, command=command, is_controller=not worker, profile=profile,
                                 run_id=run_id, repo_dir=REPO_DIR)
    except ExpectationFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    from lmfacts.prompts.corpus import CorpusError

    try:
        _ = session.corpus  # a malformed --prompts file is a usage error before any test runs
    except CorpusError as exc:
        raise pytest.UsageError(f"--prompts: {exc}") from None
    config.stash[SESSION_KEY] = session
    if not config.getoption("lmfacts_no_baselines", False):
        from lmfacts.baselines import BaselineFileError, load_all

        try:  # a malformed baseline file is a usage error before any model loads
            config.stash[BASELINES_KEY] = load_all()
        except BaselineFileError as exc:
            raise pytest.UsageError(str(exc)) from None
    if not worker and not config.option.collectonly:
        config.pluginmanager.register(RunReporter(session), "lmfacts-run-reporter")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadgroup`` (lmfacts's default with ``-n``), one worker per (model, device)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from lmfacts.xdist_scheduling import TargetScheduling

    return TargetScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # xdist controller → worker
    lm = node.config.stash.get(SESSION_KEY, None)
    if lm is not None:
        node.workerinput["lmfacts_run_id"] = lm.run_id
        node.workerinput["lmfacts_hypothesis_seed"] = node.config.getoption("hypothesis_seed", None)


def _session(config: pytest.Config) -> Any:
    return config.stash.get(SESSION_KEY, None)


def _spec(item: pytest.Item) -> ClaimSpec | None:
    mark = item.get_closest_marker("lmfacts_claim")
    return mark.args[0] if mark else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" not in metafunc.fixturenames:
        return
    config = metafunc.config
    options = config.stash[SESSION_KEY].options
    mark = metafunc.definition.get_closest_marker("lmfacts_claim")
    prefix = f"{mark.args[0].id}-" if mark else ""
    # The xdist_group mark (set here, before xdist's own collection hook reads it) keeps each
    # target's tests on one worker under --dist loadgroup, so no worker loads a model twice.
    params = [pytest.param(t, id=prefix + t.id, marks=pytest.mark.xdist_group(name=t.id)) for t in options.targets]
    metafunc.parametrize("target", params, scope="session")


@pytest.fixture(scope="session")
def lmfacts_session(pytestconfig: pytest.Config) -> Any:
    """The run's :class:`lmfacts.session.LmfactsSession`."""
    lm = _session(pytestconfig)
    if lm is None:
        raise RuntimeError("lmfacts session not started")
    return lm


@pytest.fixture(scope="session")
def ctx(lmfacts_session: Any, target: Target) -> Any:
    """The :class:`lmfacts.context.ClaimContext` of one (model, device); the model loads here once."""
    from lmfacts.models.names import ModelOptionError, ModelUnavailableError, UnknownModelError

    context = ClaimContext(lmfacts_session, target)
    failure = None
    try:
        context.model("raw")
    except (ModelUnavailableError, UnknownModelError, ModelOptionError) as exc:
        failure = f"cannot load {target.model}: {exc}"
    if failure is not None:  # failed outside the except: pytest would print the chained exceptions' texts too
        pytest.fail(failure, pytrace=False)  # a clear message, no traceback
    yield context
    lmfacts_session.release_target(target)


@pytest.hookimpl(trylast=True)
def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each claim test with its family (``RN``, ``BF``, ``MA``, …), so ``-m "MA or AS"`` selects
    families exactly; ``-k "MA-"`` also matches model names inside test ids (``tiny-gemma-cpu``)."""
    spec = _spec(item)
    if spec is None or not spec.family.isidentifier():
        return
    if not any(line.split(":", 1)[0].strip() == spec.family for line in item.config.getini("markers")):
        item.config.addinivalue_line("markers", f"{spec.family}: the catalogue's {spec.family}-* claims")
    item.add_marker(spec.family)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each target's tests together, raw-processing claims before compat ones."""
    order = {"raw": 0, "compat": 1}

    def key(pair: tuple[int, pytest.Item]) -> tuple[Any, ...]:
        i, item = pair
        callspec = getattr(item, "callspec", None)
        target = callspec.params.get("target") if callspec else None
        if target is None:
            return (0, "", 0, i)
        spec = _spec(item)
        return (1, target.id, order.get(spec.processing if spec else "raw", 0), i)

    targets_first: dict[str, int] = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        t = callspec.params.get("target") if callspec else None
        if t is not None:
            targets_first.setdefault(t.id, len(targets_first))
    items[:] = [it for _, it in sorted(enumerate(items), key=lambda p: (
        key(p)[0], targets_first.get(key(p)[1], -1), key(p)[2], key(p)[3]))]
    lm = _session(config)
    if lm is not None:  # the probe pass feeds the MA / AS / LL reductions only when one of them will run
        lm.wants_beyond = any((s := _spec(it)) is not None and s.family in ("MA", "AS", "LL") for it in items)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """An expectation naming an unknown claim of a loaded claim family (a typo), or a ``params`` key the
    claim does not declare (or of the wrong type), is a usage error."""
    from lmfacts.claims import CLAIMS

    lm = _session(session.config)
    if lm is None or not CLAIMS:
        return
    families = {spec.family for spec in CLAIMS.values()}
    for e in lm.expectations:
        if e.claim not in CLAIMS and e.claim.split("-")[0] in families:
            raise pytest.UsageError(f"{e.file}: expectation[{e.index}].claim: unknown claim {e.claim!r}; "
                                    f"known: {sorted(CLAIMS)}")
    from lmfacts.expectations import ExpectationFileError, validate_params

    try:  # every params key against its claim's declared schema, before any model loads
        validate_params(lm.expectations, CLAIMS)
    except ExpectationFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    from lmfacts.baselines import BaselineFileError, validate_claims

    try:  # every recorded claim id and headline key against the registered claims
        validate_claims(session.config.stash.get(BASELINES_KEY, []), CLAIMS)
    except BaselineFileError as exc:
        raise pytest.UsageError(str(exc)) from None


class FamilyKeywordWarning(pytest.PytestWarning):
    """``-k`` named a claim family but also selected claims of other families (:mod:`lmfacts.selection`)."""


@pytest.hookimpl(trylast=True, specname="pytest_collection_finish")
def pytest_collection_finish_keyword(session: pytest.Session) -> None:
    """Warn, right after collection and in the warnings summary, when ``-k`` names a claim family (``-k "AS or
    MA"``) but selected claims of other families (``as`` is inside ``test_rs_basis``): ``-m`` selects families."""
    from lmfacts.claims import CLAIMS
    from lmfacts.selection import family_keyword_strays

    keyword = getattr(session.config.option, "keyword", "") or ""
    if not keyword or not CLAIMS:
        return
    selected = [(s.id, s.family, it.nodeid) for it in session.items if (s := _spec(it)) is not None]
    message = family_keyword_strays(keyword, selected, {spec.family for spec in CLAIMS.values()})
    if message:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"lmfacts: {message}", yellow=True)
        warnings.warn(FamilyKeywordWarning(message), stacklevel=1)


def _new_record(item: pytest.Item, spec: ClaimSpec, target: Target, lm: Any) -> ClaimRecord:
    outside = not Path(item.path).resolve().is_relative_to(Path(item.config.rootpath).resolve())
    return ClaimRecord(claim=spec.id, title=spec.title, source=spec.source, nodeid=item.nodeid,
                       model=target.label, device=target.device, dtype=lm.options.dtype,
                       processing=spec.processing, headline=list(spec.headline), checkpoint=target.checkpoint(),
                       test_file=str(Path(item.path).resolve()) if outside else None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    spec = _spec(item)
    callspec = getattr(item, "callspec", None)
    lm = _session(item.config)
    if spec is None or callspec is None or "target" not in callspec.params or lm is None:
        return
    item.stash[RECORD_KEY] = _new_record(item, spec, callspec.params["target"], lm)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Before a claim's body: point ctx at this test, resolve its expectation, apply skip / xfail."""
    spec = _spec(item)
    record = item.stash.get(RECORD_KEY, None)
    context = getattr(item, "funcargs", {}).get("ctx")
    if spec is None or record is None or not isinstance(context, ClaimContext):
        return
    context.begin(spec, record)
    from lmfacts.expectations import ModelFacts, resolve

    info = context.model().info
    if spec.inputs == "prompts":  # BOS or not changes the first positions and which ones count as content
        from lmfacts.models.metadata import bos_convention

        record.conventions.setdefault("prepend_bos", bos_convention(info))
    facts = ModelFacts(names=tuple(n for n in (context.target.model, info.name, info.hf_id_or_path) if n),
                       architecture=info.architecture, is_encoder=bool(info.is_encoder),
                       normalization=info.normalization, quantized=info.quantization is not None)
    exp = resolve(context.session.expectations, spec.id, facts, spec)
    context.expectation = exp
    record.expectation_kind = exp.kind
    record.params = exp.describe()
    if exp.skip:
        record.reason = exp.skip
        pytest.skip(exp.skip)
    _check_premises(context, spec, record)
    if exp.xfail:
        record.reason = exp.xfail
        # raises=: only a false predicate is the expected failure; a crash under it stays an error
        from lmfacts.context import ClaimFailed

        item.add_marker(pytest.mark.xfail(reason=exp.xfail, strict=True, raises=ClaimFailed))


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_call")
def pytest_runtest_call_inconclusive(item: pytest.Item) -> Any:
    """After a claim's body that raised nothing: an inconclusive interval verdict (``ctx.interval``)
    turns the pass into a skip whose reason starts with ``"inconclusive:"`` (record outcome
    ``inconclusive``). A body that failed or raised keeps its outcome: a definite ✗ wins."""
    result = yield
    record = item.stash.get(RECORD_KEY, None)
    context = getattr(item, "funcargs", {}).get("ctx")
    if record is not None and isinstance(context, ClaimContext) and context.inconclusive_reason:
        from lmfacts.context import Inconclusive

        record.reason = context.inconclusive_reason
        raise Inconclusive(context.inconclusive_reason)
    return result


class KnownFindingStopped(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """A recorded known finding no longer holds (the baseline guard's XPASS(strict)): the run fails."""


class BaselineNotComparable(Exception):
    """A recorded headline value was not measured today: the baseline cannot be compared (an error)."""


def _raw_outcome(exc: BaseException | None) -> str:
    """The claim's own outcome before the baseline guard: passed / failed / inconclusive / skipped / error."""
    from lmfacts.context import Inconclusive

    if exc is None:
        return "passed"
    if isinstance(exc, Inconclusive):
        return "inconclusive"
    if isinstance(exc, (pytest.skip.Exception, pytest.xfail.Exception)):
        return "skipped"
    return "failed" if _is_check_failure(exc) else "error"


def _baseline_decision(baselines: list[Any], context: ClaimContext, record: ClaimRecord, raw: str,
                       reads_prompts: bool) -> Any:
    """The guard's :class:`lmfacts.baselines.guard.Decision` for this record, or None without a baseline."""
    from lmfacts.baselines.guard import RunFacts, comparability, judge, select

    session = context.session
    info = context.model().info
    opts = session.options
    try:
        sha, n_prompts = session.corpus.sha256, len(session.probe_texts())
    except Exception:  # noqa: BLE001 - a broken corpus fails its claims on its own; nothing to compare
        sha, n_prompts = None, None
    # the bare model name and the target's revision: a baseline is keyed by both (record.model is name@revision)
    facts = RunFacts(model=context.target.name, revision=getattr(info, "revision", None) or context.target.revision,
                     weight_format=getattr(info, "weight_format", None),
                     quantization=getattr(info, "quantization", None), dtype=str(opts.dtype), corpus_sha256=sha,
                     n_prompts=n_prompts, probe_sample_tokens=opts.probe_sample_tokens,
                     hypothesis_profile=(session.profile or {}).get("name"),
                     prepends_bos=getattr(info, "prepends_bos", None),
                     bridge_prepends_bos=getattr(info, "bridge_prepends_bos", None))
    b, why_not = select(baselines, facts)
    if b is None:
        return None
    cb = b.claims.get(record.claim)
    if cb is None:
        record.baseline = {"file": b.file, "status": "not recorded: the baseline has no entry for this claim"}
        return None
    per_prompt = "n_examples" in record.measured
    why_not = why_not or comparability(b, facts, reads_prompts=reads_prompts or per_prompt, per_prompt=per_prompt)
    if why_not:
        record.baseline = {"file": b.file, "outcome": cb.outcome, "reason": cb.reason,
                           "values": {h.key: {"recorded": h.value, "tol": h.tol} for h in cb.headline},
                           "tolerance": {h.key: h.tol for h in cb.headline}, "status": f"not compared: {why_not}"}
        return None
    return judge(cb, b, model=record.model, raw_outcome=raw, raw_reason=record.reason, measured=record.measured)


@pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_runtest_call")
def pytest_runtest_call_baseline(item: pytest.Item) -> Any:
    """The baseline guard (:mod:`lmfacts.baselines.guard`), around the claim body and its inconclusive
    verdict: a recorded failure that still holds → xfailed (known finding); one that stopped holding →
    XPASS(strict); a headline value past its recorded tolerance → failed; otherwise the outcome stands."""
    baselines = item.config.stash.get(BASELINES_KEY, None)
    record = item.stash.get(RECORD_KEY, None)
    context = getattr(item, "funcargs", {}).get("ctx")
    if not baselines or record is None or not isinstance(context, ClaimContext):
        return (yield)
    exc: BaseException | None = None
    result = None
    try:
        result = yield
    except (KeyboardInterrupt, SystemExit, pytest.exit.Exception):
        raise
    except BaseException as e:  # noqa: BLE001 - judged below, then re-raised or replaced
        exc = e
    spec = _spec(item)
    reads_prompts = spec is None or spec.inputs != "weights"
    decision = _baseline_decision(baselines, context, record, _raw_outcome(exc), reads_prompts)
    if decision is not None:
        record.baseline = decision.info
        if decision.action == "keep" and decision.message and exc is not None:
            record.reason = f"{record.reason}; {decision.message}" if record.reason else decision.message
        elif decision.action == "xfail":
            record.reason = decision.message
            raise pytest.xfail.Exception(decision.message) from None
        elif decision.action == "xpass":
            record.reason = decision.message
            raise KnownFindingStopped(decision.message, pytrace=False) from None
        elif decision.action == "fail":
            from lmfacts.context import ClaimFailed

            record.reason = decision.message
            raise ClaimFailed(decision.message, pytrace=False) from None
        elif decision.action == "error":
            raise BaselineNotComparable(decision.message) from None
    if exc is not None:
        raise exc
    return result


def _check_premises(context: ClaimContext, spec: ClaimSpec, record: ClaimRecord) -> None:
    """Evaluate the claim's declared premises in order; skip at the first that does not hold.

    Each evaluated premise goes into ``record.premises`` with its evidence. An exception while
    measuring a premise propagates (an ``error`` outcome, never a skip or a failure).
    """
    from lmfacts.premises import PREMISES

    for name in spec.requires:
        premise = PREMISES[name]
        try:
            result = premise.check(context, spec.processing)
        except Exception as exc:  # recorded, then an error outcome: a premise that cannot be measured is no skip
            record.premises.append({"name": name, "statement": premise.statement, "holds": None,
                                    "evidence": f"could not be measured: {type(exc).__name__}: {exc}"})
            raise
        record.premises.append({"name": name, "statement": premise.statement, "holds": result.holds,
                                "evidence": result.evidence, **({"values": result.values} if result.values else {})})
        if not result.holds:
            record.reason = f"premise {name} ({premise.statement}) does not hold: {result.evidence}"
            pytest.skip(record.reason)


def _is_check_failure(exc: BaseException | None) -> bool:
    """True for a claim's own predicate failure (ctx.check), alone or grouped by Hypothesis."""
    from lmfacts.context import ClaimFailed

    if isinstance(exc, BaseExceptionGroup):
        return all(_is_check_failure(e) for e in exc.exceptions)
    return isinstance(exc, ClaimFailed)


def _outcome(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    """The record's outcome. ``failed`` only for a false predicate on valid measurements (ctx.check);
    any other exception in the body (a crash, a non-finite operand) is ``error``; a body that ended
    with an inconclusive interval verdict (a skip raised as :class:`lmfacts.context.Inconclusive`)
    is ``inconclusive``."""
    from lmfacts.context import Inconclusive

    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.skipped and call.excinfo is not None and isinstance(call.excinfo.value, Inconclusive):
        return "inconclusive"
    if report.when != "call" and report.failed:
        return "error"
    exc = call.excinfo.value if call.excinfo else None
    # pytest's own strict xpass has no exception; the baseline guard's raises KnownFindingStopped. Never
    # read the text of a traceback: a crash whose message mentions XPASS must stay an error.
    if report.failed and (isinstance(exc, KnownFindingStopped) or (
            exc is None and str(report.longrepr).startswith("[XPASS(strict)]"))):
        return "xpassed"
    if report.failed and not _is_check_failure(exc):
        return "error"
    return report.outcome


def _error_detail(call: pytest.CallInfo[None]) -> dict[str, str] | None:
    if call.excinfo is None:
        return None
    exc = call.excinfo.value
    return {"type": type(exc).__name__, "message": " ".join(str(exc).split())[:1000]}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    record = item.stash.get(RECORD_KEY, None)
    if record is None:
        return report
    if report.when == "call" or report.outcome != "passed":
        record.outcome = _outcome(report, call)
        record.duration_s = round(record.duration_s + report.duration, 4)
        if record.outcome == "error":
            record.error = _error_detail(call)
            if record.error and call.excinfo is not None:  # a NaN/inf: name its cause (float16 overflow, …)
                from lmfacts.nonfinite import explain_error

                record.error = explain_error(record.error, call.excinfo.value,
                                             getattr(item, "funcargs", {}).get("ctx"))
            if report.when == "call" and record.error:
                record.reason = f"{record.error['type']}: {record.error['message']}"
        if record.outcome in ("failed", "error") and not record.reason:
            record.reason = _short_reason(report)
        elif record.outcome == "skipped" and not record.reason:
            record.reason = _skip_reason(report)
        elif record.outcome == "xfailed" and not record.reason:
            record.reason = getattr(report, "wasxfail", None)
        if record.outcome not in ("failed", "xpassed"):
            record.witness = None
        if record.outcome == "error":  # after the record is complete: it keeps what the traceback said
            _shorten_explained_error(item, report, call, record.error)
        data = record.to_dict()
        report.user_properties.append((USER_PROPERTY, data))
        _junit_properties(item, data)
        context = item.funcargs.get("ctx") if hasattr(item, "funcargs") else None
        if isinstance(context, ClaimContext):
            loaded = context.session.pool.loaded
            if loaded is not None:
                report.user_properties.append((MODEL_PROPERTY, loaded.info.to_dict()))
            if report.when == "call":
                context.end()
    return report


class ExplainedErrorRepr(TerminalRepr):
    """The ``longrepr`` of an explained error: its text, no traceback; ``reprcrash`` (where it was raised, and
    its first line as the message) keeps the message in pytest's short test summary (``ERROR id - Type: …``).
    Under xdist it travels as its text (pytest serialises a TerminalRepr without a traceback by ``str``)."""

    def __init__(self, text: str, excinfo: Any) -> None:
        self.text = text
        self.reprcrash: ReprFileLocation | None = None
        try:
            crash = excinfo._getreprcrash()
        except Exception:  # noqa: BLE001 - the location is a convenience; the text is what matters
            crash = None
        if crash is not None:
            self.reprcrash = ReprFileLocation(crash.path, crash.lineno, text.splitlines()[0])

    def __str__(self) -> str:
        return self.text

    def toterminal(self, tw: Any) -> None:
        for line in self.text.splitlines():
            tw.line(line, red=not line.startswith("(an lmfacts error"))


def _shorten_explained_error(item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None],
                             error: dict[str, str] | None) -> None:
    """An error that is one of lmfacts' explained errors (:func:`lmfacts.errors.is_explained`: a model that
    cannot load, NaN/inf, no content token, …) is shown in the terminal as its message, not a traceback through
    library frames: ``report.longrepr`` becomes that text (the record, and so the report files, are unchanged).
    Any other exception (a bug) keeps its traceback, as does every error under ``--tb=long`` / ``--full-trace``."""
    from lmfacts.errors import is_explained, short_text, wants_traceback

    exc = call.excinfo.value if call.excinfo is not None else None
    if exc is None or not report.failed or not is_explained(exc) or wants_traceback(item.config):
        return
    base = " ".join(str(exc).split())[:1000]
    message = (error or {}).get("message", "")
    extra = message[len(base):].lstrip(" —") if message.startswith(base) else ""
    report.longrepr = ExplainedErrorRepr(short_text(exc, extra), call.excinfo)


#: The JUnit XML properties of a claim test (``--junitxml``): claim_id, model, device, dtype, outcome and
#: one ``headline`` per measured headline value (lmfacts.report.table.junit_properties).
JUNIT_PROPERTIES = ("claim_id", "model", "device", "dtype", "outcome", "headline")


def _junit_properties(item: pytest.Item, record: dict[str, Any]) -> None:
    """Put the record's JUnit properties on ``item.user_properties`` (replacing an earlier phase's), which
    pytest's junitxml writes as ``<property>`` elements of the test case (the teardown report carries them)."""
    from lmfacts.report.table import junit_properties

    item.user_properties[:] = [p for p in item.user_properties if p[0] not in JUNIT_PROPERTIES]
    item.user_properties.extend(junit_properties(record))


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """A claim whose body raised (not a false predicate) is shown as E / ERROR, like a setup error; an
    inconclusive one as ``?`` / INCONCLUSIVE (counted among the skips, its reason in ``-rs``)."""
    if report.when == "call" and report.failed:
        for name, value in report.user_properties:
            if name == USER_PROPERTY and value.get("outcome") == "error":
                return "error", "E", ("ERROR", {"red": True})
    if report.when == "call" and report.skipped:
        for name, value in report.user_properties:
            if name == USER_PROPERTY and value.get("outcome") == "inconclusive":
                return "skipped", "?", ("INCONCLUSIVE", {"yellow": True})
    return None


def _short_reason(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = (crash.message if crash is not None else str(report.longrepr)).strip()
    return " ".join(line.strip() for line in text.splitlines())[:1000] if text else "failed"


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


class RunReporter:
    """Controller-side: appends each record as its test finishes, writes the report at the end."""

    def __init__(self, session: Any) -> None:
        self.lm = session
        self.paths: dict[str, Path] = {}
        self.error: str | None = None
        self.diff_text: str | None = None
        self._old_handlers: dict[int, Any] = {}  # signal number -> the handler lmfacts replaced
        self._signal: str | None = None  # the name of the last SIGINT / SIGTERM received
        self._interrupt_pending = False  # a signal was received and the run has not yet stopped for it
        self._xdist_selection: list[str] | None = None  # the test ids the first xdist worker collected

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Open the run directory only when the run collected claims (the engine's tests write none)."""
        if any(_spec(item) is not None for item in session.items):
            self.lm.open_store()
            self._selected([item.nodeid for item in session.items if _spec(item) is not None])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under xdist the controller collects nothing: the selection is what the first worker collected, recorded
        once the first claim record opens the run directory (:meth:`pytest_runtest_logreport`), so that a run of
        tests that are not claims (the engine's own) opens none, as in a serial run."""
        if self._xdist_selection is None:
            self._xdist_selection = list(ids)

    def _selected(self, ids: list[str]) -> None:
        """Record the selection in run.json (status ``running``) before any test runs, and turn SIGTERM
        into an interruption (:meth:`_catch_interrupts`), so that a run stopped midway still writes a report that says it is partial."""
        self.lm.completion = {"status": "running", "n_selected": len(ids), "selected": sorted(ids)}
        self.lm.write_run_info()
        self._catch_interrupts()

    def _catch_interrupts(self) -> None:
        """SIGTERM (a CI timeout, ``kill``, ``timeout``) ends the run like Ctrl-C: pytest stops, the report
        is written and marked partial. Both signals are also remembered: Python drops a KeyboardInterrupt
        raised while a destructor runs (``Exception ignored in ... __del__``, e.g. the regex module's
        ``Group.__del__`` during garbage collection), so a signal that lands there would be lost and the run
        would go on as if never stopped; :meth:`pytest_runtest_logstart` raises it again at the next test
        boundary. Only in the main thread, and only for a signal that still has Python's default handling."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread() or self._old_handlers:
            return

        def on_signal(signum: int, frame: Any) -> None:
            self._signal = signal.Signals(signum).name
            self._interrupt_pending = True
            raise KeyboardInterrupt(self._signal)

        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        for signum, default in defaults.items():
            if signal.getsignal(signum) is default:
                self._old_handlers[signum] = signal.signal(signum, on_signal)

    def _restore_signal_handlers(self) -> None:
        import signal

        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers = {}

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        """Raise KeyboardInterrupt again for a SIGINT / SIGTERM whose first KeyboardInterrupt did not end the
        run (swallowed in a destructor, or by a library catching BaseException)."""
        if self._interrupt_pending:
            raise KeyboardInterrupt(f"{self._signal} (received earlier; its first interruption was swallowed)")

    def _finish_completion(self, exitstatus: int) -> None:
        """Set the run's final status: ``interrupted`` (by SIGINT / SIGTERM) or ``finished``, with the
        selected tests that recorded no result (``not_run``)."""
        c = self.lm.completion
        if c is None:
            return
        done = {r.get("nodeid") for r in self.lm.results}
        c["not_run"] = [i for i in c.get("selected", []) if i not in done]
        if exitstatus == pytest.ExitCode.INTERRUPTED or self._signal is not None:
            c["status"] = "interrupted"
            c["signal"] = self._signal or "SIGINT"
        else:
            c["status"] = "finished"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.lm.store is None and any(n in (USER_PROPERTY, MODEL_PROPERTY) for n, _ in report.user_properties):
            self.lm.open_store()  # under xdist the controller collects nothing: open at the first record
            if self.lm.completion is None and self._xdist_selection is not None:
                self._selected(self._xdist_selection)
        for name, value in report.user_properties:
            if name == MODEL_PROPERTY:
                key = f"{value['name']}|{value['device']}|{value['weight_processing']}"
                if key not in self.lm.models:
                    self.lm.models[key] = value
                    self.lm.write_run_info()
        for name, value in report.user_properties:
            if name == USER_PROPERTY:
                self.lm.add_result(value)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        lm = self.lm
        self._restore_signal_handlers()
        if self._interrupt_pending and exitstatus != pytest.ExitCode.INTERRUPTED:
            exitstatus = session.exitstatus = pytest.ExitCode.INTERRUPTED  # swallowed during the last test
        lm.pool.release()
        if lm.store is None:
            return
        self._finish_completion(exitstatus)
        try:
            from lmfacts.report.render import render_run

            lm.write_run_info()
            self.paths = render_run(lm.run_dir)
        except Exception as exc:  # a lost report must fail the run
            self.error = f"could not write the report in {lm.run_dir}: {type(exc).__name__}: {exc}"
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            return
        if lm.options.compare_latest:
            self._compare_latest(session)

    def _compare_latest(self, session: pytest.Session) -> None:
        import json

        from lmfacts.report.diff import diff_runs, format_diff
        from lmfacts.report.paths import latest_run

        previous = latest_run(self.lm.options.report_dir, exclude=self.lm.run_dir)
        if previous is None:
            self.diff_text = "no earlier run to compare with"
            return
        a = json.loads((previous / "report.json").read_text())
        b = json.loads((self.lm.run_dir / "report.json").read_text())
        diff = diff_runs(a, b)
        self.diff_text = f"compared with {previous}:\n{format_diff(diff)}"
        if diff.regressions:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.error:
            terminalreporter.section("lmfacts report", red=True)
            terminalreporter.write_line(self.error, red=True)
            return
        if not self.paths:
            return
        import json

        from lmfacts.report.summary import terminal_summary_lines

        terminalreporter.section("lmfacts replication report")
        report_json = Path(self.paths["json"]) if "json" in self.paths else None
        if report_json and report_json.exists():
            for line in terminal_summary_lines(json.loads(report_json.read_text())):
                terminalreporter.write_line(line)
        for kind, path in self.paths.items():
            terminalreporter.write_line(f"{kind}: {path}")
        if self.diff_text:
            terminalreporter.write_line(self.diff_text)


def pytest_report_header(config: pytest.Config) -> list[str]:
    lm = _session(config)
    if lm is None:
        return []
    options = lm.options
    lines = [f"lmfacts: models={', '.join(options.models)} devices={', '.join(options.devices)} "
             f"dtype={options.dtype}" + (f" revisions={', '.join(options.revisions)}" if options.revisions else "")]
    unswept = [m for m in options.models if options.revisions and options.revisions_of(m) == (None,)]
    if unswept:
        lines.append(f"lmfacts: --revision applies to hub models only; {', '.join(unswept)} "
                     f"run{'s' if len(unswept) == 1 else ''} once, without a revision")
    return lines

