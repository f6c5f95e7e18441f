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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import pytest

Processing = Literal["raw", "compat"]
CLAIM_ID = re.compile(r"^[A-Z]{2,4}-\d+p?$")

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class ClaimSpec:
    """What the catalogue says about one claim: its ID, title, source and how it measures.

    ``processing`` names the TransformerLens weight processing the claim measures under:
    ``"compat"`` (fold_ln, center_writing_weights, …, as the RN post's HookedTransformer did) or
    ``"raw"`` (the HF weights as published).
    """

    id: str
    title: str
    source: str
    processing: Processing
    function: str
    requires: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        """The source-post prefix of the ID: ``RN``, ``BF`` or ``RS``."""
        return self.id.split("-")[0]


CLAIMS: dict[str, ClaimSpec] = {}


def claim(claim_id: str, *, title: str, source: str, processing: Processing = "raw",
          requires: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Register a test function as the measurement of catalogue claim ``claim_id``.

    The test must take the ``ctx`` fixture (a :class:`lmfacts.context.ClaimContext`). ``requires``
    names the premises (:mod:`lmfacts.premises`) the claim rests on: the plugin checks them on the
    loaded model before the body runs and skips the claim, naming the premise and its evidence,
    where one does not hold. A second registration of the same ID, or an unknown premise, raises
    ``ValueError``.
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

    def decorate(fn: F) -> F:
        spec = ClaimSpec(claim_id, title, source, processing, f"{fn.__module__}.{fn.__qualname__}", requires)
        existing = CLAIMS.get(claim_id)
        if existing is not None and existing.function != spec.function:
            raise ValueError(f"claim {claim_id} is registered twice: {existing.function} and {spec.function}")
        CLAIMS[claim_id] = spec
        return pytest.mark.lmfacts_claim(spec)(fn)  # type: ignore[return-value]

    return decorate
