"""``--prepend-bos auto|always|never``: applied once at load, followed by every tokenisation, reported.

In-process: the policy on tiny models (GPT-NeoX's bridge prepends no BOS, GPT-2's does), what the probe's
tokeniser and a plain ``bridge.to_tokens`` then produce, and ``always`` on a model without a BOS token.
Subprocess (the issue's acceptance command): ``pytest claims/ --model lmfacts-test/tiny-neox
--prepend-bos always -k RN-2`` on a Hugging Face cache built by :func:`lmfacts.models.tiny.write_hf_cache`
runs RN-2 (not skipped), says so in the conventions and run.json, and ``report diff`` against the
``auto`` run flags the convention.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lmfacts.models.loading import build_tiny_model, load_model
from lmfacts.models.metadata import bos_convention
from lmfacts.models.names import ModelOptionError
from lmfacts.models.tiny import write_hf_cache
from lmfacts.probe.batching import tokenize_one
from tests.helpers import REPO, only_run_dir, run_pytest

TEXT = "ab"  # byte tokenizer: 'a' = 65, 'b' = 66; BOS = id 0


@pytest.fixture(scope="module", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMFACTS_CACHE_DIR", str(tmp_path_factory.mktemp("lmfacts-cache")))
        yield


def _ids(loaded) -> list[int]:
    info = loaded.info
    return tokenize_one(loaded.bridge, TEXT, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)[0]


@pytest.mark.parametrize(("name", "policy", "bridge_default", "used"), [
    ("tiny-neox", "auto", False, False),
    ("tiny-neox", "always", False, True),
    ("tiny-neox", "never", False, False),
    ("tiny-gpt2", "auto", True, True),
    ("tiny-gpt2", "always", True, True),
    ("tiny-gpt2", "never", True, False),
])
def test_policy_sets_what_every_tokenisation_uses(name: str, policy: str, bridge_default: bool, used: bool) -> None:
    loaded = build_tiny_model(name, prepend_bos=policy)
    info = loaded.info
    assert (info.prepend_bos_policy, info.bridge_prepends_bos, info.prepends_bos) == (policy, bridge_default, used)
    expected = [0, 65, 66] if used else [65, 66]
    assert _ids(loaded) == expected  # the probe / premises / per-prompt claims' tokeniser
    # a direct call with the bridge's default follows the policy too
    assert loaded.bridge.to_tokens(TEXT, move_to_device=False)[0].tolist() == expected
    words = bos_convention(info)
    assert words.startswith("BOS prepended" if used else "no BOS") and f"--prepend-bos {policy}" in words
    assert bos_convention(info.to_dict()) == words


def test_load_model_passes_the_policy_through() -> None:
    loaded = load_model("tiny-neox", prepend_bos="always")
    assert loaded.info.prepends_bos and _ids(loaded)[0] == 0
    with pytest.raises(ValueError, match="prepend_bos must be one of"):
        load_model("tiny-neox", prepend_bos="sometimes")


def _no_bos_llama_dir(out: Path) -> Path:
    """A local HF dir: random Llama with a 256-token byte tokenizer that has no special tokens at all."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tk).save_pretrained(str(out))
    cfg = AutoConfig.for_model("llama", vocab_size=256, num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                               num_key_value_heads=2, intermediate_size=96, max_position_embeddings=128,
                               bos_token_id=None, eos_token_id=None, pad_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForCausalLM(cfg).save_pretrained(str(out))
    return out


def test_always_without_a_bos_token_names_the_model(tmp_path: Path) -> None:
    model_dir = _no_bos_llama_dir(tmp_path / "nobos-llama")
    assert load_model(str(model_dir)).info.bos_token_id is None  # auto works: no BOS, none prepended
    assert load_model(str(model_dir), prepend_bos="never").info.prepends_bos is False
    with pytest.raises(ModelOptionError, match=r"--prepend-bos always: model 'nobos-llama' has no BOS token"):
        load_model(str(model_dir), prepend_bos="always")


# --------------------------------------------------------------------------------------------
# The claim suite, in a subprocess, on a Hugging Face cache


@pytest.fixture(scope="module")
def hub_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    hub = tmp_path_factory.mktemp("hf") / "hub"
    write_hf_cache("tiny-neox", hub, "lmfacts-test/tiny-neox")
    return {"HF_HUB_CACHE": str(hub), "HF_HOME": str(hub.parent), "HF_HUB_OFFLINE": "1"}


def _results(run_dir: Path) -> dict[str, dict]:
    return {r["claim"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}


def test_always_runs_rn2_on_a_neox_hub_model_and_diff_flags_it(hub_env: dict[str, str], tmp_path: Path) -> None:
    common = ("claims/", "--model", "lmfacts-test/tiny-neox", "-k", "RN-2", "--max-prompts", "16")
    runs = {}
    for policy in ("auto", "always"):
        proc, _ = run_pytest(*common, "--prepend-bos", policy, report_dir=tmp_path / policy, env=hub_env)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[policy] = only_run_dir(tmp_path / policy)
    auto, always = _results(runs["auto"]), _results(runs["always"])
    # auto: the NeoX bridge prepends no BOS, so the BOS premise skips RN-2 with its evidence
    assert auto["RN-2"]["outcome"] == "skipped" and "BOS" in auto["RN-2"]["reason"], auto["RN-2"]
    # always: RN-2 and RN-2p run (a random model may pass or fail them, but they are judged)
    for claim in ("RN-2", "RN-2p"):
        assert always[claim]["outcome"] in ("passed", "failed"), always[claim]
        assert always[claim]["conventions"]["prepend_bos"] == (
            "BOS prepended (--prepend-bos always; the bridge would prepend none)")
    assert auto["RN-2"]["conventions"].get("prepend_bos", "no BOS (--prepend-bos auto").startswith("no BOS")
    model = json.loads((runs["always"] / "run.json").read_text())["models"][0]
    assert (model["source"], model["prepends_bos"], model["prepend_bos_policy"], model["bridge_prepends_bos"]) == (
        "hub", True, "always", False)
    assert json.loads((runs["always"] / "run.json").read_text())["run"]["options"]["prepend_bos"] == "always"
    for run in runs.values():  # the report diff reads report.json
        if not (run / "report.json").is_file():
            pytest.fail(f"no report.json in {run}")
    diff = subprocess.run([sys.executable, "-m", "lmfacts", "report", "diff", str(runs["auto"]), str(runs["always"])],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "BOS CONVENTION DIFFERS (1 model(s))" in diff.stdout, diff.stdout + diff.stderr
    assert ("[lmfacts-test/tiny-neox] no BOS (--prepend-bos auto: the bridge's default) -> BOS prepended "
            "(--prepend-bos always; the bridge would prepend none)") in diff.stdout


def test_always_on_a_model_without_bos_is_an_error_of_its_tests(tmp_path: Path) -> None:
    model_dir = _no_bos_llama_dir(tmp_path / "nobos-llama")
    proc, _ = run_pytest("claims/", "--model", str(model_dir), "--prepend-bos", "always", "-k", "RN-1 and not RN-1p",
                         "--max-prompts", "8", report_dir=tmp_path / "reports", env={"HF_HUB_OFFLINE": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "--prepend-bos always: model 'nobos-llama' has no BOS token" in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    records = _results(only_run_dir(tmp_path / "reports"))
    assert records["RN-1"]["outcome"] == "error", records["RN-1"]
