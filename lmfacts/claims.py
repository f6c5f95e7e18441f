"""The one registration site for claims.

A claim is a pytest test function decorated with :func:`claim`. The decorator records the claim's
ID, title, source and weight processing in :data:`CLAIMS` (a duplicate ID is an error) and marks the
test so the plugin parametrises it over every requested (model, device) with ids such as
``RN-1-smollm2-135m-cpu``.

Claim IDs look like ``RN-1``: 2–4 capital letters, ``-``, a number. An optional trailing ``p``
(``RN-1p``) names the *per-prompt variant* of the catalogue claim ``RN-1``: a Hypothesis test
that checks the post's per-prompt statement one generated prompt at a time, next to the
corpus-level test registered as ``RN-1``. Both belong to the same catalogue entry, and
``pytest -k RN-1`` selects both (``-k "RN-1 and not RN-1p"`` only the corpus-level one).

**One schema per claim.** A claim declares its parameters (``params=(Param(...), ...)``: name,
type, default, unit, one-line meaning) where it is registered; that declaration holds the *only*
default of each parameter. Expectation files (:mod:`lmfacts.expectations`) are validated against
it at collection time (an unknown key or a value of the wrong type is a usage error), and the
claim body reads ``ctx.expectation["key"]``, the declared default overridden by any matching
entry. ``headline`` names the keys of ``ctx.measured`` that are the claim's headline values (the
number a paper's table would show; what a model's recorded baseline guards, :mod:`lmfacts.baselines`);
a key may be a dotted path into
nested values, an integer part indexing a list (``"attn_out.rate"``, ``"per_k.0.delta_head"``), read
with :func:`headline_value`.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pytest

Processing = Literal["raw", "compat"]
Inputs = Literal["prompts", "weights"]
CLAIM_ID = re.compile(r"^[A-Z]{2,4}-\d+p?$")

F = TypeVar("F", bound=Callable[..., object])
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class _Required:
    """The sentinel type of :data:`REQUIRED`."""

    _instance: _Required | None = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


#: Default of a parameter the claim cannot run without: some expectation entry must give it.
REQUIRED: Any = _Required()


def _type_name(tp: Any) -> str:
    """``float``, ``list[int]``, ``float | dict`` … (what error messages and the report show)."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _check_value(tp: Any, value: Any) -> bool:
    """True when a TOML value fits the declared type.

    ``float`` accepts an int (TOML ``1`` for ``1.0``) but never a bool; ``int`` rejects bools and
    floats; ``list[X]`` checks every item; ``dict`` is a nested TOML table; ``A | B`` either.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_check_value(t, value) for t in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and (item is Any or all(_check_value(item, v) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    if tp is Any:
        return True
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


@dataclass(frozen=True)
class Domain:
    """The values a parameter can take without fixing the claim's verdict in advance: ``lo ≤ value ≤ hi``.

    ``lo`` / ``hi`` are inclusive bounds (``None``: unbounded on that side); ``what`` names the quantity in
    error messages. Declared once, on the parameter (``Param(..., domain=SHARE)``): an expectation value
    outside it is a usage error (:func:`lmfacts.expectations.validate_params`), since a share threshold of
    1.5, a Spearman ρ bound of −2 or an R² bound above 1 makes the claim pass (or fail) whatever the model
    measures. Only a quantity with a natural range has one: a tolerance of an unbounded quantity (a growth
    rate's ``rate_tol = 1e9``) cannot be told from a loose one and has none.
    """

    lo: float | None
    hi: float | None
    what: str

    def contains(self, value: Any) -> bool:
        """True unless ``value`` (a number, or a list: every number in it) lies outside the bounds.

        Values of another type are left to the type check (:meth:`Param.accepts`).
        """
        items = value if isinstance(value, list) else [value]
        numbers = [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return all((self.lo is None or v >= self.lo) and (self.hi is None or v <= self.hi) for v in numbers)

    def __str__(self) -> str:
        """``[0, 1]``, ``[1, ∞)``, ``(−∞, 1]``."""
        return interval_text(self.lo, self.hi, lambda x: f"{x:g}")


def interval_text(lo: float | None, hi: float | None, num: Any = str) -> str:
    """The inclusive interval ``[lo, hi]`` as text, an unbounded side (None) as ∞: ``[1.0, ∞)``, ``(−∞, 1]``;
    ``num`` formats a bound (default ``str``)."""
    return f"{'(−∞' if lo is None else '[' + num(lo)}, {'∞)' if hi is None else num(hi) + ']'}"


#: The natural domains lmfacts' claims declare (one place each; a claim of one's own may use them too).
SHARE = Domain(0, 1, "a share or probability")
CORRELATION = Domain(-1, 1, "a correlation (Spearman ρ)")
R_SQUARED = Domain(None, 1, "a coefficient of determination R²")
KURTOSIS = Domain(1, None, "a kurtosis (≥ 1 for every distribution)")
COUNT = Domain(0, None, "a count or an index")
SAMPLE_SIZE = Domain(1, None, "a number of prompts (at least one)")


@dataclass(frozen=True)
class Param:
    """One declared parameter of a claim.

    ``type``: ``int``, ``float``, ``bool``, ``str``, ``list[int]``, ``list[float]``, ``dict`` (a nested
    TOML table) or a union of those. ``default``: the value when no expectation entry gives one;
    ``None`` means optional with no value (the claim then reads ``None`` and falls back to a
    computed default, e.g. a window from the depth), :data:`REQUIRED` that some entry must give it.
    ``unit``: the value's unit (``"1/layer"``, ``"nats"``, ``""`` for a dimensionless ratio).
    ``meaning``: one line, shown in the report next to the value and its origin. ``domain``: the
    :class:`Domain` of a quantity with a natural range (:data:`SHARE`, :data:`CORRELATION`, …); an
    expectation value outside it is a usage error.
    """

    name: str
    type: Any
    default: Any = None
    unit: str = ""
    meaning: str = ""
    domain: Domain | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not PARAM_NAME.match(self.name):
            raise ValueError(f"parameter name {self.name!r} must be snake_case")
        if not isinstance(self.meaning, str) or not isinstance(self.unit, str):
            raise ValueError(f"parameter {self.name}: unit and meaning must be strings")
        if self.default is not None and self.default is not REQUIRED and not self.accepts(self.default):
            raise ValueError(f"parameter {self.name}: default {self.default!r} is not a {self.type_name}")
        if self.domain is not None and not isinstance(self.domain, Domain):
            raise ValueError(f"parameter {self.name}: domain must be a Domain (e.g. SHARE), not {self.domain!r}")
        if self.domain is not None and self.default is not REQUIRED and not self.domain.contains(self.default):
            raise ValueError(f"parameter {self.name}: default {self.default!r} is outside its domain {self.domain} "
                             f"({self.domain.what})")

    @property
    def type_name(self) -> str:
        """The declared type as written in error messages (``float``, ``list[int]``)."""
        return _type_name(self.type)

    @property
    def required(self) -> bool:
        """True when the claim cannot run unless an expectation entry gives the value."""
        return self.default is REQUIRED

    def accepts(self, value: Any) -> bool:
        """True when ``value`` (as parsed from TOML) has the declared type."""
        return _check_value(self.type, value)


@dataclass(frozen=True)
class ClaimSpec:
    """What the catalogue says about one claim: its ID, title, source and how it measures.

    ``processing`` names the TransformerLens weight processing the claim measures under:
    ``"compat"`` (fold_ln, center_writing_weights, …, as the RN post's HookedTransformer did) or
    ``"raw"`` (the HF weights as published). ``inputs`` says what the claim measures on:
    ``"prompts"`` (the probe, corpus prompts, Hypothesis examples) or ``"weights"`` (the weights
    alone); a recorded baseline (:mod:`lmfacts.baselines`) of a prompt claim is compared only on the
    same prompts, a weight claim's on every run.
    """

    id: str
    title: str
    source: str
    processing: Processing
    function: str
    requires: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    headline: tuple[str, ...] = ()
    inputs: Inputs = "prompts"

    @property
    def schema(self) -> dict[str, Param]:
        """Every parameter the claim accepts, by name."""
        return {p.name: p for p in self.params}

    @property
    def defaults(self) -> dict[str, Any]:
        """Each accepted parameter's declared default (``None``: optional, no value; or :data:`REQUIRED`)."""
        return {name: p.default for name, p in self.schema.items()}

    @property
    def family(self) -> str:
        """The source-post prefix of the ID: ``RN``, ``BF`` or ``RS``."""
        return self.id.split("-")[0]


CLAIMS: dict[str, ClaimSpec] = {}


def claim(claim_id: str, *, title: str, source: str, processing: Processing = "raw",
          requires: tuple[str, ...] = (), params: tuple[Param, ...] = (),
          headline: tuple[str, ...] = (), inputs: Inputs = "prompts") -> Callable[[F], F]:
    """Register a test function as the measurement of catalogue claim ``claim_id``.

    The test must take the ``ctx`` fixture (a :class:`lmfacts.context.ClaimContext`). ``requires``
    names the premises (:mod:`lmfacts.premises`) the claim rests on: the plugin checks them on the
    loaded model before the body runs and skips the claim, naming the premise and its evidence,
    where one does not hold. ``params`` declares the claim's parameters (:class:`Param`; the one
    place their defaults live); ``headline`` names the keys of ``ctx.measured`` that are the
    claim's headline values; ``inputs`` is ``"weights"`` for a claim that reads no prompts (its
    baseline is compared on every run), else ``"prompts"``. A second registration of the same ID, an unknown premise, a parameter
    that is not a :class:`Param` or whose name repeats,
    or a headline key that is not a non-empty string, raises ``ValueError``.
    """
    from lmfacts.premises import PREMISES, unknown_premises

    requires = tuple(requires)
    unknown = unknown_premises(requires)
    if unknown:
        raise ValueError(f"claim {claim_id}: unknown premise(s) {unknown}; registered: {sorted(PREMISES)}")
    if not CLAIM_ID.match(claim_id):
        raise ValueError(f"claim id {claim_id!r} must look like 'RN-1' (letters, '-', number, "
                         f"optional 'p' for a per-prompt variant)")
    if processing not in ("raw", "compat"):
        raise ValueError(f"claim {claim_id}: processing must be 'raw' or 'compat', not {processing!r}")
    if inputs not in ("prompts", "weights"):
        raise ValueError(f"claim {claim_id}: inputs must be 'prompts' or 'weights', not {inputs!r}")
    params, headline = _validate_schema(claim_id, params, headline)

    def decorate(fn: F) -> F:
        spec = ClaimSpec(claim_id, title, source, processing, f"{fn.__module__}.{fn.__qualname__}", requires,
                         params, headline, inputs)
        existing = CLAIMS.get(claim_id)
        if existing is not None and existing.function != spec.function:
            raise ValueError(f"claim {claim_id} is registered twice: {existing.function} and {spec.function}")
        CLAIMS[claim_id] = spec
        return pytest.mark.lmfacts_claim(spec)(fn)  # type: ignore[return-value]

    return decorate


def headline_value(measured: dict[str, Any], key: str) -> Any:
    """The value a headline ``key`` names in a record's ``measured`` dict.

    ``key`` is a dotted path: each part is a dict key, or, on a list, an integer index
    (``"per_k.0.delta_head"`` = ``measured["per_k"][0]["delta_head"]``). Raises ``KeyError`` naming
    the key and the part that is missing.
    """
    value: Any = measured
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(f"headline {key!r}: no {part!r} in the measured values")
    return value


def _validate_schema(claim_id: str, params: Any, headline: Any) -> tuple[tuple[Param, ...], tuple[str, ...]]:
    """Check ``params`` / ``headline`` of a registration; returns them as tuples or raises ``ValueError``."""
    if isinstance(headline, str) or not isinstance(headline, (tuple, list)):
        raise ValueError(f"claim {claim_id}: headline must be a tuple of measured keys, not {headline!r}")
    for key in headline:
        if not isinstance(key, str) or not key:
            raise ValueError(f"claim {claim_id}: headline key {key!r} must be a non-empty string")
    if len(set(headline)) != len(headline):
        raise ValueError(f"claim {claim_id}: headline {tuple(headline)} repeats a key")
    if not isinstance(params, (tuple, list)):
        raise ValueError(f"claim {claim_id}: params must be a tuple of Param, not {params!r}")
    seen: set[str] = set()
    for p in params:
        if not isinstance(p, Param):
            raise ValueError(f"claim {claim_id}: params must be Param(...) entries, not {p!r}")
        if p.name in seen:
            raise ValueError(f"claim {claim_id}: parameter {p.name!r} is declared twice")
        seen.add(p.name)
    return tuple(params), tuple(headline)
