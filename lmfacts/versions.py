"""Installed versions of lmfacts' dependencies, read from package metadata (nothing is imported)."""

from __future__ import annotations

from importlib import metadata


def package_version(name: str) -> str | None:
    """Installed version of the distribution ``name`` (``"transformer_lens"``, ``"transformers"``), or None when it
    is not installed as a distribution (a source checkout). Does not import the package; raises nothing."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
