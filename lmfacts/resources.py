"""Where the catalogue and its data are, in a checkout and in an installed wheel alike.

The wheel maps two top-level directories of the repository into the package (``pyproject.toml``):
``claims/`` → ``lmfacts/catalogue/`` and ``fixtures/`` → ``lmfacts/fixtures/``. In a checkout (run from
the repository, or installed editable) they stay where they are, next to ``lmfacts/``. The functions
here return the installed directory when it exists, else the checkout's; light (no imports beyond
:mod:`pathlib`), and they never look at the current directory.

Overrides by environment variable (``$LMFACTS_EXPECTATIONS_DIR``, ``$LMFACTS_BASELINES_DIR``) are
applied by the modules that read those files, not here.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR: Path = Path(__file__).resolve().parent


def _installed_or_checkout(installed: str, checkout: str) -> Path:
    inside = PACKAGE_DIR / installed
    return inside if inside.is_dir() else PACKAGE_DIR.parent / checkout


def fixtures_dir(*parts: str) -> Path:
    """The shipped data directory, or a path inside it: ``fixtures_dir("expectations")``.

    ``<site-packages>/lmfacts/fixtures/…`` in an installed wheel, ``<repo>/fixtures/…`` in a
    checkout. The path is not checked for existence (callers say what is missing).
    """
    return _installed_or_checkout("fixtures", "fixtures").joinpath(*parts)


def catalogue_dir() -> Path:
    """The directory of the claim modules: ``<site-packages>/lmfacts/catalogue`` or ``<repo>/claims``."""
    return _installed_or_checkout("catalogue", "claims")
