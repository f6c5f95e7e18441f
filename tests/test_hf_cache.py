"""The Hugging Face cache route, end to end: ``pytest claims/ --model <hub id | alias>`` with no hub.

A temporary HF hub cache (``HF_HUB_CACHE``) holds the tiny random GPT-NeoX under two ids: a made-up
``lmfacts-test/tiny-neox`` and ``EleutherAI/pythia-70m``, the target of the real alias ``pythia-70m``
(``lmfacts.models.names.HUB_ALIASES`` is the one registration site for aliases and has no run-time
registration, so the alias route is tested with an alias that exists, its hub id served by the cache).
The claim suite runs in a subprocess with a network guard loaded as a pytest plugin (``-p``): it logs
every DNS lookup and every TCP connect attempt, and refuses any connection to a non-local host.

* ``HF_HUB_OFFLINE=1``: both names load from the cache, no lookup, no connect.
* hub unreachable (``HF_ENDPOINT`` on a closed local port, offline mode off): one ≤ 3 s reachability
  probe per hub model (a refused connect to that port) and nothing else; a hub id absent from the
  cache fails fast with the instructions, as an error of its tests.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from lmfacts.models.hub import PROBE_TIMEOUT_S
from lmfacts.models.tiny import write_hf_cache
from tests.helpers import only_run_dir, run_pytest

NETGUARD = '''
"""pytest plugin (test only): log DNS lookups and TCP connects to $LMFACTS_NETLOG; refuse non-local hosts."""
import json, os, socket, time

_LOG = os.environ["LMFACTS_NETLOG"]
_LOCAL = ("127.0.0.1", "::1", "localhost")
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _log(kind, host, port):
    with open(_LOG, "a") as fh:
        fh.write(json.dumps({"kind": kind, "host": str(host), "port": port, "t": time.time()}) + "\\n")


def _guard(kind, sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        _log(kind, address[0], address[1])
        if address[0] not in _LOCAL:
            raise OSError("netguard: connection to a non-local host refused")


def connect(self, address):
    _guard("connect", self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _guard("connect", self, address)
    return _connect_ex(self, address)


def getaddrinfo(host, port, *args, **kwargs):
    _log("getaddrinfo", host, port)
    return _getaddrinfo(host, port, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''

HUB_IDS = ("lmfacts-test/tiny-neox", "EleutherAI/pythia-70m")
CLAIM = "RN-1 and not RN-1p"


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The cache and the network guard's plugin directory, as environment variables for the subprocess."""
    root = tmp_path_factory.mktemp("hfcache")
    for hf_id in HUB_IDS:
        write_hf_cache("tiny-neox", root / "hub", hf_id)
    plugin_dir = root / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "lmfacts_netguard.py").write_text(NETGUARD)
    return {"HF_HOME": str(root), "HF_HUB_CACHE": str(root / "hub"), "PYTHONPATH": str(plugin_dir),
            "LMFACTS_CACHE_DIR": str(root / "lmfacts-cache")}


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed when the block ends: connects are refused


def _run(env: dict[str, str], tmp_path: Path, *models: str) -> tuple[Path, list[dict], str]:
    netlog = tmp_path / "net.jsonl"
    netlog.touch()
    args = [a for m in models for a in ("--model", m)]
    proc, _ = run_pytest("claims/", *args, "-k", CLAIM, "--max-prompts", "8", "-p", "lmfacts_netguard",
                         report_dir=tmp_path / "reports", env={**env, "LMFACTS_NETLOG": str(netlog)})
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-4000:]
    events = [json.loads(x) for x in netlog.read_text().splitlines()]
    return only_run_dir(tmp_path / "reports"), events, out


def _models(run_dir: Path) -> dict[str, dict]:
    return {m["name"]: m for m in json.loads((run_dir / "run.json").read_text())["models"]}


def _outcomes(run_dir: Path) -> dict[str, str]:
    recs = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    return {r["model"]: r["outcome"] for r in recs}


def _assert_loaded_from_cache(run_dir: Path, cache: Path) -> None:
    models = _models(run_dir)
    assert set(models) >= {"lmfacts-test/tiny-neox", "pythia-70m"}, list(models)
    for name, hf_id in (("lmfacts-test/tiny-neox", HUB_IDS[0]), ("pythia-70m", HUB_IDS[1])):
        m = models[name]
        assert (m["source"], m["hf_id_or_path"], m["architecture"], m["n_layers"], m["d_model"]) == (
            "hub", hf_id, "gpt_neox", 4, 128)
        assert "loaded from the local Hugging Face cache in offline mode" in m["notes"], m["notes"]
        # the head was compared with the tensors of the cached snapshot (the checkpoint was read)
        assert any("equals stored tensor" in n for n in m["notes"]), m["notes"]
    outcomes = _outcomes(run_dir)
    assert outcomes["lmfacts-test/tiny-neox"] != "error" and outcomes["pythia-70m"] != "error", outcomes
    assert (cache / f"models--{HUB_IDS[0].replace('/', '--')}" / "refs" / "main").is_file()


def test_offline_env_loads_hub_id_and_alias_from_the_cache_without_network(
        hf_cache: dict[str, str], tmp_path: Path) -> None:
    env = {**hf_cache, "HF_HUB_OFFLINE": "1"}
    run_dir, events, _ = _run(env, tmp_path, "lmfacts-test/tiny-neox", "pythia-70m")
    _assert_loaded_from_cache(run_dir, Path(hf_cache["HF_HUB_CACHE"]))
    assert events == [], f"network activity with HF_HUB_OFFLINE=1: {events}"


def test_unreachable_hub_costs_one_probe_per_model_and_nothing_else(hf_cache: dict[str, str], tmp_path: Path) -> None:
    port = _closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**hf_cache, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint}
    run_dir, events, out = _run(env, tmp_path, "lmfacts-test/tiny-neox", "pythia-70m", "lmfacts-test/absent")
    _assert_loaded_from_cache(run_dir, Path(hf_cache["HF_HUB_CACHE"]))
    connects = [e for e in events if e["kind"] == "connect"]
    lookups = [e for e in events if e["kind"] == "getaddrinfo"]
    # one reachability probe per hub model (two cached, one absent), all to the closed endpoint
    assert [(e["host"], e["port"]) for e in connects] == [("127.0.0.1", port)] * 3, events
    assert {(e["host"], e["port"]) for e in lookups} == {("127.0.0.1", port)} and len(lookups) == 3, events
    assert PROBE_TIMEOUT_S <= 3.0
    # the absent id fails fast, saying why and how to provide weights, as an error of its tests
    assert _outcomes(run_dir)["lmfacts-test/absent"] == "error"
    assert f"is not in the local Hugging Face cache and the hub ({endpoint}) is unreachable" in out, out[-4000:]
    assert "HF_HUB_OFFLINE=1" in out
