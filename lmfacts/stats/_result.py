"""JSON-safe serialisation for the frozen result dataclasses."""

from __future__ import annotations

import dataclasses
from typing import Any

from lmfacts.jsonsafe import to_jsonable

__all__ = ["ResultMixin"]


class ResultMixin:
    """Adds :meth:`to_dict` to a dataclass result."""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-safe dict (floats, ints, bools, lists, None)."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
