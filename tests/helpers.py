"""Shared helpers for the engine's tests: run pytest on the claim suite in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Short prompts of every shape the probe must handle (one token, tabs/newlines, unicode, one long enough
#: to force padding), shared by the probe equality tests.
PROBE_TEXTS = [
    "Hello.",
    "The quick brown fox jumps over the lazy dog.",
    "x",
    "Residual stream norms grow exponentially over the forward pass, or so the post says.",
    "1 2 3",
    "A much longer prompt so that the batch needs padding: " + "words and more words, " * 6,
    "Tabs\tand\nnewlines",
    "Última prueba — ünïcödé.",
]


def run_pytest(*args: str, report_dir: Path, env: dict[str, str] | None = None,
               timeout: float = 600) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``python -m pytest ARGS --report-dir REPORT_DIR`` from the repo root; return (result, seconds)."""
    full_env = dict(os.environ, **(env or {}))
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        full_env.pop(name, None)  # the child is its own run, not this xdist worker
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", *args, "--report-dir", str(report_dir),
                           "-p", "no:cacheprovider"],
                          cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - t0


def only_run_dir(report_dir: Path) -> Path:
    """The single run directory written under ``report_dir``."""
    runs = [p for p in report_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected one run dir in {report_dir}, found {runs}"
    return runs[0]


def load_report(report_dir: Path) -> dict:
    """The report.json of the single run under ``report_dir``."""
    return json.loads((only_run_dir(report_dir) / "report.json").read_text())


def save_random_causal_lm(out: Path, model_type: str, *, seed: int = 0, trained_norms: bool = False,
                          **config: object) -> Path:
    """Save a randomly initialised HF causal LM of any ``model_type`` with the lmfacts byte tokenizer into ``out``.

    ``config``: HF config kwargs (``vocab_size`` comes from the 257-token byte tokenizer; BOS = EOS = id 0
    unless given). Weights are drawn under ``torch.manual_seed(seed)`` inside ``fork_rng`` (the caller's RNG
    is untouched). ``trained_norms``: add N(0, 0.3²) to every norm vector and N(0, 0.05²) to every bias (HF
    initialises gains to exactly 1 and biases to 0, which hides any convention that ignores them).
    ``save_pretrained`` writes the model and the tokenizer, so ``--model out`` loads it as a local HF
    directory. Returns ``out``. Raises ValueError for a ``model_type`` transformers does not know.
    """
    import torch
    import transformers
    from transformers import AutoConfig

    from lmfacts.models.tiny import load_byte_tokenizer

    tok = load_byte_tokenizer()
    cfg = AutoConfig.for_model(model_type, vocab_size=len(tok), **{"bos_token_id": 0, "eos_token_id": 0, **config})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(cfg)
        if trained_norms:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if p.dim() == 1 and "norm" in name.lower():
                        p.add_(0.3 * torch.randn(p.shape))
                    elif p.dim() == 1 and name.endswith("bias"):
                        p.add_(0.05 * torch.randn(p.shape))
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def registered_claims() -> dict:
    """Every claim of ``claims/`` registered (its modules imported): ``lmfacts.claims.CLAIMS``."""
    import importlib

    from lmfacts.claims import CLAIMS

    for p in sorted((REPO / "claims").glob("test_*.py")):
        importlib.import_module(f"claims.{p.stem}")
    return CLAIMS


def write_user_expectation(tmp_path: Path, claim_id: str, params: str, name: str = "mine.toml") -> Path:
    """A user expectation file ``tmp_path/name``: one published entry for ``claim_id`` on model ``m`` with the TOML
    inline-table body ``params`` (e.g. ``"min_r2 = 1.01"``)."""
    path = tmp_path / name
    path.write_text(f'schema = 1\n[[expectation]]\nclaim = "{claim_id}"\nkind = "published"\nsource = "s"\n'
                    f'match = {{ models = ["m"] }}\nparams = {{ {params} }}\n')
    return path
