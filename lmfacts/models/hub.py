"""Hugging Face hub access without retry loops: local cache first, then a short reachability probe.

Plain transformers retries for ~27 s when the hub is unreachable. Instead we look for the repo's
``config.json`` in the local HF cache (then boot in offline mode), and otherwise probe the hub host
(taken from ``huggingface_hub.constants.ENDPOINT``) with a ≤3 s connect. If it is unreachable we raise
:class:`ModelUnavailableError` at once, saying how to provide weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from lmfacts.models.names import ModelUnavailableError

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class HubPlan:
    """How to boot a hub model: ``offline`` means boot from the local cache with offline mode forced."""

    hf_id: str
    revision: str | None
    offline: bool
    config_path: Path | None


def cached_config_path(hf_id: str, revision: str | None = None) -> Path | None:
    """Return the cached ``config.json`` of ``hf_id`` at ``revision`` in the local HF cache, if any."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(hf_id, "config.json", revision=revision)
    except Exception:
        return None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def _resolve_with_timeout(host: str, port: int, timeout: float) -> list[tuple] | None:
    """Run ``getaddrinfo`` in a daemon thread so a hanging resolver cannot exceed ``timeout``."""
    result: list[list[tuple]] = []

    def work() -> None:
        with contextlib.suppress(OSError):
            result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))

    thread = threading.Thread(target=work, daemon=True, name="lmfacts-dns-probe")
    thread.start()
    thread.join(timeout)
    return result[0] if result else None


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Return True if a TCP connection to the hub endpoint's host opens within ``timeout`` seconds."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host = url.hostname
    if not host:
        return False
    port = url.port or (443 if url.scheme == "https" else 80)
    infos = _resolve_with_timeout(host, port, timeout)
    if not infos:
        return False
    family, socktype, proto, _, addr = infos[0]
    try:
        with socket.socket(family, socktype, proto) as sock:
            sock.settimeout(timeout)
            sock.connect(addr)
        return True
    except OSError:
        return False


def provide_weights_text(hf_id: str) -> str:
    """Explain the ways to provide weights for ``hf_id`` without hub access."""
    return (
        f"To provide weights for {hf_id!r} without hub access, do one of:\n"
        f"  * populate the Hugging Face cache: run `huggingface-cli download {hf_id}` on a connected machine "
        "and copy ~/.cache/huggingface (or $HF_HOME) here;\n"
        "  * set HF_HUB_OFFLINE=1 with such a populated cache;\n"
        "  * pass a local Hugging Face model directory (containing config.json) as --model;\n"
        "  * pass a .gguf file as --model."
    )


@contextlib.contextmanager
def offline_mode() -> Iterator[None]:
    """Force huggingface_hub/transformers offline mode for the duration of the block."""
    from huggingface_hub import constants

    old_const = constants.HF_HUB_OFFLINE
    old_env = os.environ.get("HF_HUB_OFFLINE")
    constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old_const
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def check_remote_code(config_path: Path | None, trust_remote_code: bool, label: str) -> None:
    """Raise ModelUnavailableError if the config needs remote code (``auto_map``) and it isn't trusted."""
    if config_path is None or trust_remote_code:
        return
    try:
        config = json.loads(Path(config_path).read_text())
    except (OSError, ValueError):
        return
    if "auto_map" in config:
        raise ModelUnavailableError(
            f"{label} needs custom modelling code from its repository (config.json has 'auto_map'). "
            "Re-run with --trust-remote-code (load_model(..., trust_remote_code=True)) if you trust it."
        )


def plan_hub_load(hf_id: str, revision: str | None, trust_remote_code: bool) -> HubPlan:
    """Decide how to load a hub model, or raise ModelUnavailableError quickly (no retries)."""
    from huggingface_hub import constants

    cached = cached_config_path(hf_id, revision)
    rev = f" at revision {revision!r}" if revision else ""
    if cached is not None:
        check_remote_code(cached, trust_remote_code, hf_id)
        offline = bool(constants.HF_HUB_OFFLINE) or not hub_reachable()
        return HubPlan(hf_id, revision, offline, cached)
    if constants.HF_HUB_OFFLINE:
        raise ModelUnavailableError(
            f"{hf_id}{rev} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set.\n"
            + provide_weights_text(hf_id)
        )
    if not hub_reachable():
        raise ModelUnavailableError(
            f"{hf_id}{rev} is not in the local Hugging Face cache and the hub ({constants.ENDPOINT}) "
            "is unreachable.\n" + provide_weights_text(hf_id)
        )
    from huggingface_hub import hf_hub_download

    try:
        config_path = Path(hf_hub_download(hf_id, "config.json", revision=revision))
    except Exception as exc:
        raise ModelUnavailableError(f"Cannot fetch config.json of {hf_id}{rev}: {exc}") from exc
    check_remote_code(config_path, trust_remote_code, hf_id)
    return HubPlan(hf_id, revision, False, config_path)
