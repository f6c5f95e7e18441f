"""The one definition of lmfacts's command-line options and their parse-time validation.

Everything here is light (no torch import) except the device check, which imports torch only
when a device other than ``cpu`` is requested.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DEFAULT_MODEL = "smollm2-135m"
DTYPES = ("float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


_NUMBER = re.compile(r"\d+")


def checkpoint_step(text: str | None) -> int | None:
    """The training step a checkpoint name or revision states: its last integer, else None.

    ``"step1000"`` → 1000, ``"step-10"`` → 10, ``"ckpt_3_final"`` → 3, ``"main"`` → None (the Pythia
    convention ``step{N}`` and directory names like ``step-N`` / ``checkpoint-N``).
    """
    found = _NUMBER.findall(text or "")
    return int(found[-1]) if found else None


def natural_key(text: str) -> list[object]:
    """Sort key that orders the numbers inside ``text`` by value: ``step-2`` < ``step-10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def order_checkpoint_models(models: tuple[str, ...]) -> tuple[str, ...]:
    """``models`` with its local checkpoint directories in training order, other models in place.

    The positions held by local model directories (``--model ckpts/step-*`` expands to them in the
    shell's alphabetical order: step-10 before step-2) are refilled with those directories sorted by
    parent directory, then by :func:`natural_key` of their name. Names that do not parse are left to
    the caller's validation.
    """
    from lmfacts.models.names import UnknownModelError, parse_model_name

    def is_dir_model(name: str) -> bool:
        try:
            return parse_model_name(name).kind == "local-dir"
        except UnknownModelError:
            return False

    slots = [i for i, m in enumerate(models) if is_dir_model(m)]
    ordered = sorted((models[i] for i in slots),
                     key=lambda m: (str(Path(m).expanduser().resolve().parent), natural_key(Path(m).name)))
    out = list(models)
    for i, m in zip(slots, ordered, strict=True):
        out[i] = m
    return tuple(out)


def distinct_display_names(models: tuple[str, ...]) -> dict[str, str]:
    """Display names for the local models of ``models`` whose own display names collide.

    A local directory or ``.gguf`` file shows as its last path component (``ckpts/step-5`` → ``step-5``);
    where two different paths end the same (``runA/step-5``, ``runB/step-5``) each shows as its shortest
    trailing run of path components no other of them ends in (``runA/step-5``, ``runB/step-5``), so their
    test ids, matrix columns and model rows stay apart; a local path named like another model of the run (a
    directory ``z/tiny-llama`` beside ``tiny-llama``) shows as ``z/tiny-llama``. Returns ``{model: name}`` for
    those models only.
    Unknown names are skipped (the loader reports them).
    """
    from lmfacts.models.names import UnknownModelError, parse_model_name

    refs: dict[str, Any] = {}
    for m in dict.fromkeys(models):
        try:
            refs[m] = parse_model_name(m)
        except UnknownModelError:
            continue
    groups: dict[str, list[str]] = {}
    for m, ref in refs.items():
        groups.setdefault(ref.display_name, []).append(m)
    out: dict[str, str] = {}
    for same in groups.values():
        paths = {m: Path(refs[m].target).parts for m in same if refs[m].kind in ("local-dir", "gguf-file")}
        if len({refs[m].target for m in same}) < 2 or not paths:  # a lone local path named like a registered
            continue                                                   # model (``x/tiny-llama``) is told apart too
        for m, parts in paths.items():  # each: its shortest trailing parts no other path of the group ends in
            others = [q for n, q in paths.items() if n != m]
            k = next((k for k in range(2, len(parts) + 1) if all(q[-k:] != parts[-k:] for q in others)), len(parts))
            out[m] = "/".join(parts[-k:])
    return out


@dataclass(frozen=True)
class Target:
    """One (model, revision, device) triple that every claim is parametrised over.

    ``revision`` is the HF revision of a hub model (``--revision``, repeatable), None when none was
    given or the model is not a hub model (revisions name hub commits only).
    """

    model: str
    device: str
    revision: str | None = None
    #: the name reports show when the model's own display name is shared with another model of the run
    #: (two local checkpoints ``runA/step-5`` and ``runB/step-5``); see :func:`distinct_display_names`
    display: str | None = None

    @property
    def name(self) -> str:
        """The model's display name (a path shows as its file or directory name, or as its last path parts
        where another model of the run has the same name), without revision."""
        from lmfacts.models.names import parse_model_name

        return self.display or parse_model_name(self.model).display_name

    @property
    def label(self) -> str:
        """The model as reports show it: ``pythia-160m@step1000``, or just the name without revision."""
        return f"{self.name}@{self.revision}" if self.revision else self.name

    @property
    def id(self) -> str:
        """The readable id used in test ids, e.g. ``smollm2-135m-cpu``, ``pythia-160m@step1000-cpu``."""
        return f"{self.label}-{self.device}".replace("/", "_")

    def checkpoint(self) -> dict[str, object] | None:
        """Where this target sits in a checkpoint sweep: ``{"family", "step", "revision"}``, or None.

        A hub revision with a number (``step1000``): family = the model's name, step = that number. A
        local model directory with a number in its name (``ckpts/step-10``): family = its parent
        directory and the name with the number as ``*`` (``ckpts/step-*``), step = that number.
        Otherwise None (no step to place the model at).
        """
        from lmfacts.models.names import parse_model_name

        if self.revision is not None:
            step = checkpoint_step(self.revision)
            return None if step is None else {"family": self.name, "step": step, "revision": self.revision}
        ref = parse_model_name(self.model)
        if ref.kind != "local-dir":
            return None
        path = Path(ref.target)
        step = checkpoint_step(path.name)
        if step is None:
            return None
        head, _, tail = path.name.rpartition(str(step))
        return {"family": f"{path.parent.name}/{head}*{tail}", "step": step, "revision": None}


@dataclass(frozen=True)
class RunOptions:
    """The validated lmfacts options of one pytest run."""

    models: tuple[str, ...]
    devices: tuple[str, ...]
    dtype: str
    revisions: tuple[str, ...]
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
    prepend_bos: str = "auto"
    expectations: tuple[Path, ...] = ()  # --expectations: users' files/directories, added to the built-in ones
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def revision(self) -> str | None:
        """The one ``--revision`` of the run, None when none or several were given (see ``revisions``)."""
        return self.revisions[0] if len(self.revisions) == 1 else None

    def revisions_of(self, model: str) -> tuple[str | None, ...]:
        """The revisions ``model`` is swept over: ``revisions`` for a hub model, else ``(None,)``."""
        from lmfacts.models.names import parse_model_name

        if not self.revisions or parse_model_name(model).kind != "hub":
            return (None,)
        return self.revisions

    @property
    def targets(self) -> list[Target]:
        """Every (model, revision, device) triple: models outermost, then revisions, then devices."""
        shown = distinct_display_names(self.models)
        return [Target(m, d, r, shown.get(m)) for m in self.models for r in self.revisions_of(m) for d in self.devices]

    def to_dict(self) -> dict[str, object]:
        """JSON-safe view for the report."""
        return {
            "models": list(self.models),
            "devices": list(self.devices),
            "dtype": self.dtype,
            "revision": self.revision,
            "revisions": list(self.revisions),
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
            "prepend_bos": self.prepend_bos,
            "expectations": [str(p) for p in self.expectations],
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
    g.addoption("--revision", action="append", dest="lmfacts_revisions", metavar="REV",
                help="HF revision of hub models (repeatable: a checkpoint sweep, e.g. Pythia step1000 "
                     "--revision step143000); a test-id axis: RN-1-pythia-160m@step1000-cpu. Other models "
                     "(local, tiny, packaged) have no revisions and run once.")
    g.addoption("--prompts", dest="lmfacts_prompts", default=None, metavar="FILE",
                help="replace the built-in corpus: .txt (one prompt per line, \\n escapes) or .jsonl (text field).")
    g.addoption("--expectations", action="append", dest="lmfacts_expectations", default=None, metavar="PATH",
                help="add your expectation files to the built-in ones (repeatable): a .toml file or a directory of "
                     "*.toml, same schema (lmfacts/expectations.py); an entry's origin names the file.")
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
    g.addoption("--prepend-bos", dest="lmfacts_prepend_bos", default="auto", choices=("auto", "always", "never"),
                help="prepend a BOS token to every prompt: auto (default: the TransformerBridge's choice, e.g. yes "
                     "for GPT-2, no for GPT-NeoX), always (a model without a BOS token is an error of its tests), "
                     "never. run.json, the report and the claims' conventions say which was used.")
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


_GLOB_CHARS = re.compile(r"[*?\[]")


def _is_model_dir(arg: str) -> bool:
    path = Path(arg).expanduser()
    return path.is_dir() and (path / "config.json").is_file()


def shell_expanded_models(args: list[str]) -> list[str]:
    """The model directories that follow a ``--model`` value in ``args`` (the shell's expansion).

    ``--model ckpts/step-*`` reaches pytest as ``--model ckpts/step-1 ckpts/step-10 ckpts/step-2``:
    argparse gives ``--model`` the first directory and leaves the others as test paths. Every
    argument right after a ``--model NAME`` / ``--model=NAME`` that is a local HF model directory
    (a directory with ``config.json``; never a test path) is returned here, in order.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        j = i + 2 if a == "--model" else i + 1 if a.startswith("--model=") else None
        if j is None:
            i += 1
            continue
        while j < len(args) and not args[j].startswith("-") and _is_model_dir(args[j]):
            out.append(args[j])
            j += 1
        i = j
    return out


def _expand_glob(name: str) -> list[str]:
    """A quoted ``--model 'ckpts/step-*'``: the model directories it matches (natural order), else [name]."""
    import glob

    if not _GLOB_CHARS.search(name) or _is_model_dir(name):
        return [name]
    found = sorted((m for m in glob.glob(str(Path(name).expanduser())) if _is_model_dir(m)), key=natural_key)
    if not found:
        raise pytest.UsageError(f"--model {name!r} matches no model directory (a directory with config.json)")
    return found


def _absorb_expanded_models(config: pytest.Config) -> list[str]:
    """``--model`` values plus the directories the shell expanded after one (:func:`shell_expanded_models`),
    which are taken out of the test paths (``config.args``; left empty, pytest's default paths)."""
    given = list(config.getoption("lmfacts_models") or [])
    extra = shell_expanded_models([str(a) for a in config.invocation_params.args])
    if extra:
        config.args[:] = [a for a in config.args if str(a) not in extra] or \
            [str(p) for p in (config.getini("testpaths") or [config.invocation_params.dir])]
        config.option.lmfacts_models = given + [m for m in extra if m not in given]
    return [m for name in (given + extra) for m in _expand_glob(name)]


def read_options(config: pytest.Config) -> RunOptions:
    """Validate the lmfacts options of ``config``; any bad value is a ``pytest.UsageError``.

    Side effect: the model directories a shell glob expanded after ``--model`` are moved from the test
    paths to the models (:func:`shell_expanded_models`). Local checkpoint directories are put in step
    order (:func:`order_checkpoint_models`).
    """
    from lmfacts.models.names import UnknownModelError, parse_model_name

    models = tuple(dict.fromkeys(_absorb_expanded_models(config) or [DEFAULT_MODEL]))
    spellings: dict[tuple[str, str], str] = {}  # one model named twice (ckpt/step-5 and ckpt/step-5/, gpt2 and
    for name in models:                         # openai-community/gpt2) runs once, under its first spelling
        try:
            ref = parse_model_name(name)
        except UnknownModelError as exc:
            raise pytest.UsageError(str(exc)) from None
        spellings.setdefault((ref.kind, str(ref.target)), name)
    models = order_checkpoint_models(tuple(spellings.values()))
    revisions = tuple(dict.fromkeys(config.getoption("lmfacts_revisions") or []))
    for rev in revisions:
        if not rev.strip():
            raise pytest.UsageError("--revision needs a value (a branch, tag or commit of the hub model)")
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
        revisions=revisions,
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
        prepend_bos=config.getoption("lmfacts_prepend_bos"),
        expectations=tuple(Path(p) for p in config.getoption("lmfacts_expectations") or ()),
    )
