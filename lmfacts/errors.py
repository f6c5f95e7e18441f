"""Which exceptions are lmfacts' own *explained* errors, and their short terminal form.

An explained error is a known condition that lmfacts detects and raises with a message that says what
happened and what to fix: a model that cannot be loaded (:class:`lmfacts.models.names.ModelUnavailableError`
and its subclasses), NaN/inf activations or measurements, a corpus with no content token, a degenerate
sample, a bad expectation or baseline file, … When a claim ends in ``error`` (E) because of one, pytest's
ERRORS section shows that message only (``Type: message``), not a traceback through torch or transformers:
the user's input is at fault, not the code. Any other exception (``AttributeError``, ``KeyError``, …) is a
bug and keeps pytest's full traceback. ``--tb=long`` / ``--full-trace`` show the traceback of an explained
error too (a developer's request).

The classes are named here as ``module:QualName`` strings (not imported: several live in modules that import
torch), and an exception matches when any class of its MRO is listed, so subclasses
(``BridgeBuildError(ModelUnavailableError)``) match too. Add a new explained error class to
:data:`EXPLAINED`.
"""

from __future__ import annotations

from typing import Any

#: lmfacts' explained error classes, ``"module:QualName"``; an exception whose MRO holds one is explained.
EXPLAINED: frozenset[str] = frozenset({
    "lmfacts.models.names:UnknownModelError",
    "lmfacts.models.names:ModelUnavailableError",  # + UnsupportedArchitectureError, BridgeBuildError, …
    "lmfacts.models.names:ModelOptionError",
    "lmfacts.models.gguf_cache:IncompleteGGUFError",
    "lmfacts.probe.probe:NonFiniteActivationError",
    "lmfacts.probe.probe:CovarianceNotKept",
    "lmfacts.probe.batching:PromptError",
    "lmfacts.probe.batching:OutOfVocabularyError",
    "lmfacts.probe.batching:NoContentTokensError",
    "lmfacts.prompts.corpus:CorpusError",
    "lmfacts.compat_check:CompatProcessingError",
    "lmfacts.compat_check:NonFiniteLogitsError",
    "lmfacts.context:NonFiniteMeasurement",
    "lmfacts.stats._validation:DegenerateSample",
    "lmfacts.expectations:ExpectationFileError",
    "lmfacts.baselines:BaselineFileError",
    "lmfacts.plugin:BaselineNotComparable",
})

#: The line after an explained error's message in the terminal.
HINT = "(an lmfacts error: the message above says what to fix; --tb=long shows the traceback)"


def is_explained(exc: BaseException | None) -> bool:
    """True when ``exc`` is one of :data:`EXPLAINED` (or a subclass); an exception group when all its members
    are (Hypothesis groups several failures). False for None and for any other exception (a bug)."""
    if exc is None:
        return False
    if isinstance(exc, BaseExceptionGroup):
        return bool(exc.exceptions) and all(is_explained(e) for e in exc.exceptions)
    return any(f"{cls.__module__}:{cls.__qualname__}" in EXPLAINED for cls in type(exc).__mro__)


def short_text(exc: BaseException, extra: str = "") -> str:
    """The terminal text of an explained error: ``Type: message`` (its notes after it, e.g. Hypothesis's
    falsifying example; each member of a group in turn), ``extra`` (a cause found afterwards, e.g. the
    float16 overflow :func:`lmfacts.nonfinite.explain_error` names) and :data:`HINT`."""
    def one(e: BaseException) -> list[str]:
        if isinstance(e, BaseExceptionGroup):
            return [line for sub in e.exceptions for line in one(sub)]
        notes: list[Any] = list(getattr(e, "__notes__", None) or [])
        return [f"{type(e).__name__}: {e}", *(str(n) for n in notes)]

    lines = one(exc)
    if extra:
        lines.append(extra.strip())
    return "\n".join([*lines, HINT])


def wants_traceback(config: Any) -> bool:
    """True when the user asked for full tracebacks (``--tb=long`` or ``--full-trace``)."""
    try:
        return config.getoption("tbstyle", "auto") == "long" or bool(config.getoption("fulltrace", False))
    except (ValueError, AttributeError):
        return False
