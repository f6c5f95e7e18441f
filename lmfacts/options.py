"""The one definition of lmfacts's command-line options and their parse-time validation.

Everything here is light (no torch import) except the device check, which imports torch only
when a device other than ``cpu`` is requested.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DEFAULT_MODEL = "smollm2-135m"
DTYPES = ("float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Target:
    """One (model, device) pair that every claim is parametrised over."""

    model: str
    device: str

    @property
    def name(self) -> str:
        """The model's display name (a path shows as its file or directory name)."""
        from lmfacts.models.names import parse_model_name

        return parse_model_name(self.model).display_name

    @property
    def id(self) -> str:
        """The readable id used in test ids, e.g. ``smollm2-135m-cpu``."""
        return f"{self.name}-{self.device}".replace("/", "_")


@dataclass(frozen=True)
class RunOptions:
    """The validated lmfacts options of one pytest run."""

    models: tuple[str, ...]
    devices: tuple[str, ...]
    dtype: str
    revision: str | None
    prompts: Path | None
    report_dir: Path
    n_devices: int | None
    device_map: str | None
    trust_remote_code: bool
    max_prompts: int | None
    batch_size: int | None
    probe_sample_tokens: int | None
    compare_latest: bool
    batch_tokens: int = 4096
    probe_memory: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def targets(self) -> list[Target]:
        """Every (model, device) pair, models outermost."""
        return [Target(m, d) for m in self.models for d in self.devices]

    def to_dict(self) -> dict[str, object]:
        """JSON-safe view for the report."""
        return {
            "models": list(self.models),
            "devices": list(self.devices),
            "dtype": self.dtype,
            "revision": self.revision,
            "prompts": str(self.prompts) if self.prompts else None,
            "report_dir": str(self.report_dir),
            "n_devices": self.n_devices,
            "device_map": self.device_map,
            "trust_remote_code": self.trust_remote_code,
            "max_prompts": self.max_prompts,
            "batch_size": self.batch_size,
            "probe_sample_tokens": self.probe_sample_tokens,
            "batch_tokens": self.batch_tokens,
            "probe_memory_gb": self.probe_memory,
        }


def _dtype(value: str) -> str:
    if value not in DTYPES:
        raise argparse.ArgumentTypeError(f"--dtype must be one of {', '.join(DTYPES)}, not {value!r}")
    return value


def _device(value: str) -> str:
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(
            f"--device {value!r} is not a device: use cpu, cuda, cuda:N, mps or auto"
        )
    return value


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def _positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return x


def add_options(parser: pytest.Parser) -> None:
    """Register lmfacts's options on pytest's parser (group ``lmfacts``)."""
    g = parser.getgroup("lmfacts", "lmfacts replication suite")
    g.addoption("--model", action="append", dest="lmfacts_models", metavar="NAME",
                help=f"model to check (repeatable; default {DEFAULT_MODEL}). "
                     "Packaged, alias, HF id, local HF dir, .gguf file or tiny-* test model.")
    g.addoption("--device", action="append", dest="lmfacts_devices", type=_device, metavar="DEV",
                help="device (repeatable): cpu, cuda, cuda:N, mps, auto. Default cpu.")
    g.addoption("--dtype", dest="lmfacts_dtype", type=_dtype, default="float32",
                help="model dtype: float32 (default), bfloat16, float16. Statistics accumulate in float64.")
    g.addoption("--revision", dest="lmfacts_revision", default=None, metavar="REV",
                help="HF revision of hub models (e.g. a Pythia step143000).")
    g.addoption("--prompts", dest="lmfacts_prompts", default=None, metavar="FILE",
                help="replace the built-in corpus: .txt (one prompt per line, \\n escapes) or .jsonl (text field).")
    g.addoption("--max-prompts", dest="lmfacts_max_prompts", type=_positive_int, default=None, metavar="N",
                help="use a stratified subset of N corpus prompts for corpus-level claims.")
    g.addoption("--batch-size", dest="lmfacts_batch_size", type=_positive_int, default=None, metavar="N",
                help="at most N prompts per forward pass of the probe (default: no cap, --batch-tokens decides).")
    g.addoption("--batch-tokens", dest="lmfacts_batch_tokens", type=_positive_int, default=4096, metavar="N",
                help="padded tokens per forward pass of the probe; prompts are sorted by length (default 4096).")
    g.addoption("--probe-memory", dest="lmfacts_probe_memory", type=_positive_float, default=None, metavar="GB",
                help="memory budget of the probe's accumulators (default: 1/4 of a CUDA device, else "
                     "min(2 GB, RAM/8)); covariances drop to float32, then to a subset of points, to fit.")
    g.addoption("--probe-sample-tokens", dest="lmfacts_probe_sample_tokens", type=_positive_int, default=None,
                metavar="N", help="feed at most N random content tokens per batch to the distribution statistics "
                                  "(moments, kurtosis, covariance); default: every token. Norms stay exact.")
    g.addoption("--report-dir", dest="lmfacts_report_dir", default="reports", metavar="DIR",
                help="where reports/<run-id>/ is written (default reports/).")
    g.addoption("--n-devices", dest="lmfacts_n_devices", type=_positive_int, default=None, metavar="N",
                help="spread a large model over N GPUs (TransformerBridge/accelerate).")
    g.addoption("--device-map", dest="lmfacts_device_map", default=None, metavar="MAP",
                choices=("auto", "balanced", "balanced_low_0", "sequential"),
                help="accelerate device_map passed through to TransformerBridge.")
    g.addoption("--trust-remote-code", dest="lmfacts_trust_remote_code", action="store_true", default=False,
                help="allow hub models whose config needs remote code (off by default).")
    g.addoption("--no-baselines", dest="lmfacts_no_baselines", action="store_true", default=False,
                help="ignore the recorded baselines (fixtures/baselines, $LMFACTS_BASELINES_DIR): the bare catalogue "
                     "predicates, what a model without a baseline gets")
    g.addoption("--compare-latest", dest="lmfacts_compare_latest", action="store_true", default=False,
                help="at the end, diff this run's report against the latest earlier run in --report-dir.")


def _check_device_present(device: str) -> None:
    """Raise UsageError if a requested accelerator is absent (imports torch only for non-cpu)."""
    if device in ("cpu", "auto"):
        return
    import torch

    if device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise pytest.UsageError("--device mps requested but MPS is not available on this machine")
        return
    if not torch.cuda.is_available():
        raise pytest.UsageError(f"--device {device} requested but CUDA is not available on this machine")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise pytest.UsageError(
            f"--device {device} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )


def resolve_auto_device() -> str:
    """The best available device for ``--device auto``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def read_options(config: pytest.Config) -> RunOptions:
    """Validate the lmfacts options of ``config``; any bad value is a ``pytest.UsageError``."""
    from lmfacts.models.names import UnknownModelError, parse_model_name

    models = tuple(dict.fromkeys(config.getoption("lmfacts_models") or [DEFAULT_MODEL]))
    for name in models:
        try:
            parse_model_name(name)
        except UnknownModelError as exc:
            raise pytest.UsageError(str(exc)) from None
    devices = tuple(dict.fromkeys(config.getoption("lmfacts_devices") or ["cpu"]))
    for device in devices:
        _check_device_present(device)
    n_devices = config.getoption("lmfacts_n_devices")
    device_map = config.getoption("lmfacts_device_map")
    if (n_devices or device_map) and any(d == "cpu" for d in devices):
        raise pytest.UsageError("--n-devices/--device-map spread a model over GPUs: combine them with --device cuda")
    prompts = config.getoption("lmfacts_prompts")
    prompts_path = None
    if prompts:
        prompts_path = Path(prompts)
        if not prompts_path.is_file():
            raise pytest.UsageError(f"--prompts {prompts}: no such file")
        if prompts_path.suffix not in (".txt", ".jsonl"):
            raise pytest.UsageError(f"--prompts {prompts}: use a .txt or .jsonl file")
    return RunOptions(
        models=models,
        devices=devices,
        dtype=config.getoption("lmfacts_dtype"),
        revision=config.getoption("lmfacts_revision"),
        prompts=prompts_path,
        report_dir=Path(config.getoption("lmfacts_report_dir")),
        n_devices=n_devices,
        device_map=device_map,
        trust_remote_code=bool(config.getoption("lmfacts_trust_remote_code")),
        max_prompts=config.getoption("lmfacts_max_prompts"),
        batch_size=config.getoption("lmfacts_batch_size"),
        probe_sample_tokens=config.getoption("lmfacts_probe_sample_tokens"),
        compare_latest=bool(config.getoption("lmfacts_compare_latest")),
        batch_tokens=config.getoption("lmfacts_batch_tokens"),
        probe_memory=config.getoption("lmfacts_probe_memory"),
    )
