"""Tests for the light name-parsing module (no torch at import time, no network while parsing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmfacts.models.names import (
    HUB_ALIASES,
    PACKAGED,
    TINY,
    UnknownModelError,
    accepted_forms_text,
    parse_model_name,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_packaged_names(name: str) -> None:
    ref = parse_model_name(name)
    assert (ref.kind, ref.target, ref.display_name) == ("packaged", name, name)


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_names_have_fixture_configs(name: str) -> None:
    ref = parse_model_name(name)
    assert ref.kind == "tiny"
    spec = json.loads(TINY[name].config_path(name).read_text())
    assert spec["model_type"] == TINY[name].family


@pytest.mark.parametrize(
    ("alias", "hf_id"),
    [
        ("gpt2", "openai-community/gpt2"),
        ("gpt2-xl", "openai-community/gpt2-xl"),
        ("distilgpt2", "distilbert/distilgpt2"),
        ("pythia-1.4b", "EleutherAI/pythia-1.4b"),
        ("pythia-12b", "EleutherAI/pythia-12b"),
        ("opt-1.3b", "facebook/opt-1.3b"),
        ("gpt-neo-125M", "EleutherAI/gpt-neo-125M"),
        ("roberta-large", "FacebookAI/roberta-large"),
    ],
)
def test_aliases(alias: str, hf_id: str) -> None:
    ref = parse_model_name(alias)
    assert (ref.kind, ref.target, ref.display_name) == ("hub", hf_id, alias)


def test_alias_table_is_complete() -> None:
    assert len([a for a in HUB_ALIASES if a.startswith("pythia-")]) == 8
    assert len([a for a in HUB_ALIASES if a.startswith("opt-")]) == 4
    assert len([a for a in HUB_ALIASES if a.startswith("gpt-neo-")]) == 3
    assert {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2", "roberta-base"} <= set(HUB_ALIASES)


def test_hub_id_passes_through() -> None:
    ref = parse_model_name("some-org/some.model_v2")
    assert (ref.kind, ref.target) == ("hub", "some-org/some.model_v2")


def test_local_dir_and_gguf(tmp_path: Path) -> None:
    model_dir = tmp_path / "mymodel"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    ref = parse_model_name(str(model_dir))
    assert (ref.kind, ref.target, ref.display_name) == ("local-dir", str(model_dir.resolve()), "mymodel")

    gguf = tmp_path / "m.Q4_0.gguf"
    gguf.write_bytes(b"GGUF")
    ref = parse_model_name(str(gguf))
    assert (ref.kind, ref.target, ref.display_name) == ("gguf-file", str(gguf.resolve()), "m.Q4_0.gguf")


def test_missing_gguf_and_dir_without_config(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="GGUF file not found"):
        parse_model_name(str(tmp_path / "absent.gguf"))
    with pytest.raises(UnknownModelError, match="no config.json"):
        parse_model_name(str(tmp_path))


@pytest.mark.parametrize("bad", ["gpt3", "pythia-1.5b", "", "a/b/c", "tiny-gpt3"])
def test_unknown_name_lists_every_form_and_alias(bad: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        parse_model_name(bad)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for alias in HUB_ALIASES:
        assert alias in message
    for name in [*PACKAGED, *TINY]:
        assert name in message
    assert "org/name" in message and ".gguf" in message and "config.json" in message


def test_accepted_forms_text_mentions_everything() -> None:
    text = accepted_forms_text()
    assert all(n in text for n in [*PACKAGED, *TINY, *HUB_ALIASES, *HUB_ALIASES.values()])


def test_parsing_touches_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing a name (hub ids and aliases included) opens no connection: it must be instant and work offline."""
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("parse_model_name opened a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    names = ["smollm2-135m", "tiny-llama", "gpt2-xl", "EleutherAI/pythia-70m", str(REPO / "pyproject.toml")]
    for n in names:
        try:
            parse_model_name(n)
        except UnknownModelError:
            pass


def test_names_module_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; import lmfacts.models.names as n; "
        "import lmfacts.models as m; m.parse_model_name('gpt2-xl'); "
        "heavy = [k for k in ('torch', 'transformers', 'transformer_lens', 'gguf') if k in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
