"""One model named twice on the command line in two spellings runs once (it ran twice, test ids ``…-cpu0`` and
``…-cpu1``, one matrix cell '✓×2'); two different models keep their own tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import run_pytest


def _ids(proc: object) -> list[str]:
    return [line.split("[", 1)[1].rstrip("]") for line in proc.stdout.splitlines() if "[RN-1-" in line]  # type: ignore[attr-defined]


def test_one_model_in_two_spellings_runs_once(tmp_path: Path) -> None:
    from lmfacts.models.tiny import byte_tokenizer_dir

    ckpt = tmp_path / "run" / "step-5"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text('{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, '
                                      '"n_embd": 32, "n_head": 2, "vocab_size": 257}')
    for f in byte_tokenizer_dir().iterdir():
        shutil.copy(f, ckpt / f.name)
    args = ["claims/", "-k", "test_rn1_exponential_growth", "--collect-only", "-q"]
    proc, _ = run_pytest(*args, "--model", str(ckpt), "--model", f"{ckpt}/", "--model", str(tmp_path / "run" / ".." /
                         "run" / "step-5"), report_dir=tmp_path / "r")
    assert _ids(proc) == ["RN-1-step-5-cpu"], proc.stdout[-2000:] + proc.stderr[-2000:]
    proc, _ = run_pytest(*args, "--model", "tiny-gpt2", "--model", str(ckpt), report_dir=tmp_path / "r")
    assert _ids(proc) == ["RN-1-tiny-gpt2-cpu", "RN-1-step-5-cpu"], proc.stdout[-2000:]
