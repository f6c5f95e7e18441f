"""The lmfacts cache directory: its location, atomic directory writes, and cached file hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

_HASH_CHUNK = 4 * 1024 * 1024
_HASH_INDEX = "file-hashes.json"


def cache_root() -> Path:
    """Return the cache directory: ``$LMFACTS_CACHE_DIR`` or ``~/.cache/lmfacts`` (created if needed)."""
    env = os.environ.get("LMFACTS_CACHE_DIR")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "lmfacts"
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def build_dir_atomic(final: Path, build: Callable[[Path], None]) -> Path:
    """Create directory ``final`` by running ``build(tmp_dir)`` and renaming tmp_dir to ``final``.

    A killed or failing build leaves only a ``.tmp-*`` sibling (never a half-written ``final``).
    If another process finished ``final`` first, its result is kept and ours is discarded.
    """
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def sha256_file(path: Path) -> str:
    """Return the sha256 hex digest of ``path``, hashing in chunks.

    The digest is cached in the cache root keyed by (resolved path, size, mtime_ns, inode, ctime_ns), so an
    unchanged file is hashed only once. The inode and the status-change time are in the key because size and
    mtime alone do not tell two files apart: ``cp -p``, ``rsync -a``, ``tar x`` and reproducible builds
    (``SOURCE_DATE_EPOCH``) give a new file of the same size the old file's mtime, and a stale digest would boot
    the old file's cached conversion. ctime cannot be set from user space and changes with every write or
    replacement, so a rewritten file is hashed again (a ``chmod`` costs one extra hash, never a wrong one).
    Raises OSError when ``path`` cannot be read.
    """
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}"
    index_path = cache_root() / _HASH_INDEX
    index: dict[str, str] = {}
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            index = {}
    if key in index:
        return index[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    index[key] = value
    write_json_atomic(index_path, index)
    return value
