"""Model names (light, always importable) and model loading (heavy, imported lazily on first use).

``from lmfacts.models import parse_model_name`` never imports torch; ``load_model``,
``build_tiny_model``, ``LoadedModel`` and ``ModelInfo`` import the heavy modules when first accessed.
"""

from __future__ import annotations

from typing import Any

from lmfacts.models.names import (
    HUB_ALIASES,
    PACKAGED,
    TINY,
    ModelOptionError,
    ModelRef,
    ModelUnavailableError,
    PackagedModel,
    UnknownModelError,
    accepted_forms_text,
    parse_model_name,
)

_LAZY = {
    "load_model": "lmfacts.models.loading",
    "build_tiny_model": "lmfacts.models.loading",
    "LoadedModel": "lmfacts.models.loading",
    "ModelInfo": "lmfacts.models.metadata",
}

__all__ = [
    "HUB_ALIASES",
    "PACKAGED",
    "TINY",
    "ModelOptionError",
    "ModelRef",
    "ModelUnavailableError",
    "PackagedModel",
    "UnknownModelError",
    "accepted_forms_text",
    "parse_model_name",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import the heavy loaders only when one of them is first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lmfacts.models' has no attribute {name!r}")
