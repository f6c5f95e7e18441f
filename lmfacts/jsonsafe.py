"""Turn measured values (numpy scalars and arrays, tensors, paths, NaN) into strict JSON.

Conventions, applied recursively:

* NaN, ``+inf`` and ``-inf`` become ``null`` (strict JSON has no literal for them; this
  the one converter of the project: records, stats results and reports all use it). Renderers show ``null`` as a gap / "null".
* numpy scalars and arrays, and anything else with ``tolist()`` (e.g. a torch tensor),
  become Python numbers and lists.
* tuples and sets become lists (sets sorted when possible), mapping keys become strings,
  ``pathlib.Path`` becomes ``str``, dataclasses become dicts.
* anything else becomes ``str(obj)``, so a record is never lost to an odd value.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import PurePath
from typing import Any


def _float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def to_jsonable(obj: Any) -> Any:
    """Return a copy of ``obj`` made only of dict, list, str, int, float, bool and None (see module doc)."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _float(float(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = list(obj)
        try:
            items.sort()
        except TypeError:
            pass
        return [to_jsonable(v) for v in items]
    if isinstance(obj, PurePath):
        return str(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict) and not isinstance(obj, type):
        return to_jsonable(to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        try:
            return to_jsonable(tolist())
        except (TypeError, ValueError, RuntimeError):
            pass
    if hasattr(obj, "__float__") and hasattr(obj, "__index__"):
        return int(obj)
    if hasattr(obj, "__float__"):
        try:
            return _float(float(obj))
        except (TypeError, ValueError):
            pass
    return str(obj)


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """Strict JSON text for ``obj`` after :func:`to_jsonable` (UTF-8 kept, no NaN literals)."""
    return json.dumps(to_jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False)
