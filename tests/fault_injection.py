"""A pytest plugin that breaks the statistics claims call, for tests/test_fault_injection.py.

Loaded with ``-p tests.fault_injection``. ``LMFACTS_INJECT`` selects the fault: ``raise`` makes
every target raise ``RuntimeError("injected fault …")`` (or the class ``LMFACTS_INJECT_EXC`` names, per
target with a JSON object: see :func:`_exception_class`); ``nan`` calls the real function and
replaces every float in its result (numbers, numpy arrays, tensors, and those inside dataclasses,
dicts, lists and tuples) by NaN. ``LMFACTS_INJECT_TARGETS`` is a JSON list of ``"module:function"``.
The targets are patched in their own module and wherever a module already bound the function by
name (``from x import f``), before collection and again once the claims are imported.

``LMFACTS_INJECT_TRAINED_NORMS=1`` also perturbs the tiny random models' norm gains and biases (HF
initialises them to exactly 1 and 0, which makes claims about norm parameters skip as "untrained"),
so that every claim reaches its statistic. On a GPT-2-style tiny model it also plants what the MA / AS
claims measure (a random model has neither, and their premises would skip them): a massive activation
(:data:`MASSIVE_VALUE` in dimension :data:`MASSIVE_DIM` of the position-0 embedding, so the BOS carries it
through every block) and a BOS sink head (head 0 of every block from 1 on reads that dimension as a huge key,
against a constant query bias).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import math
import os
import sys
from typing import Any

_ORIGINALS: dict[str, Any] = {}
_PATCHED: dict[str, Any] = {}


def nanify(obj: Any) -> Any:
    """``obj`` with every float replaced by NaN (structure, ints and bools kept)."""
    import numpy as np

    if isinstance(obj, bool) or isinstance(obj, int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return math.nan
    if isinstance(obj, np.ndarray):
        return np.full_like(obj, np.nan) if np.issubdtype(obj.dtype, np.floating) else obj
    if isinstance(obj, np.floating):
        return type(obj)(np.nan)
    if "torch" in sys.modules:
        import torch

        if isinstance(obj, torch.Tensor):
            return torch.full_like(obj, math.nan) if obj.is_floating_point() else obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: nanify(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                                           if f.init})
    if isinstance(obj, dict):
        return {k: nanify(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nanify(v) for v in obj]
    if isinstance(obj, tuple):
        items = [nanify(v) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    return obj


def _exception_class(target: str) -> type[BaseException]:
    """The class ``raise`` raises at ``target``: ``LMFACTS_INJECT_EXC`` (a name or a JSON object target → name;
    a name is a builtin, ``AttributeError``, or ``module:QualName``), RuntimeError by default."""
    spec = os.environ.get("LMFACTS_INJECT_EXC", "")
    if spec.startswith("{"):
        spec = json.loads(spec).get(target, "")
    if not spec:
        return RuntimeError
    module_name, _, name = spec.rpartition(":")
    cls = getattr(importlib.import_module(module_name or "builtins"), name)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise ValueError(f"LMFACTS_INJECT_EXC: {spec!r} is not an exception class")
    return cls


def _faulty(target: str, fn: Any, kind: str) -> Any:
    exc_class = _exception_class(target) if kind == "raise" else RuntimeError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kind == "raise":
            raise exc_class(f"injected fault in {target}")
        return nanify(fn(*args, **kwargs))

    return wrapper


def _patch_everywhere() -> None:
    for target, original in _ORIGINALS.items():
        replacement = _PATCHED[target]
        for module in list(sys.modules.values()):
            name = getattr(module, "__name__", "")
            if not (name.startswith(("lmfacts", "claims", "test_")) or "claims" in name):
                continue
            for attr, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attr, replacement)


MASSIVE_DIM, MASSIVE_VALUE = 7, 3000.0


def _plant_massive_and_sink(model: Any) -> None:
    """GPT-2-style models only (``transformer.wpe`` and ``c_attn``): see the module docstring."""
    import torch

    tr = getattr(model, "transformer", None)
    if tr is None or not hasattr(tr, "wpe"):
        return
    d = model.config.n_embd
    dh = d // model.config.n_head
    with torch.no_grad():
        tr.wpe.weight[0, MASSIVE_DIM] = MASSIVE_VALUE
        for block in list(tr.h)[1:]:
            w, b = block.attn.c_attn.weight, block.attn.c_attn.bias  # Conv1D: [d, 3d] = q | k | v
            b[:dh] = 10.0  # head 0's query: a constant direction
            w[MASSIVE_DIM, d:d + dh] = 1.0  # head 0's key: large only where the massive dimension is


def _perturb_norms() -> None:
    from lmfacts.models import tiny

    build = tiny.build_tiny_hf_model

    def build_with_trained_norms(*args: Any, **kwargs: Any) -> Any:
        import torch

        model, tok, spec = build(*args, **kwargs)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() == 1 and ("norm" in name or "ln" in name):
                    p.add_(0.2 * torch.randn(p.shape, generator=g))
        _plant_massive_and_sink(model)
        return model, tok, spec

    tiny.build_tiny_hf_model = build_with_trained_norms


def pytest_configure(config: Any) -> None:
    kind = os.environ.get("LMFACTS_INJECT")
    if os.environ.get("LMFACTS_INJECT_TRAINED_NORMS") == "1":
        _perturb_norms()
    if not kind:
        return
    if kind not in ("raise", "nan"):
        raise ValueError(f"LMFACTS_INJECT must be 'raise' or 'nan', not {kind!r}")
    for target in json.loads(os.environ.get("LMFACTS_INJECT_TARGETS", "[]")):
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        original = getattr(module, attr)
        _ORIGINALS[target] = original
        _PATCHED[target] = _faulty(target, original, kind)
        setattr(module, attr, _PATCHED[target])
    _patch_everywhere()


def pytest_collection_finish(session: Any) -> None:
    _patch_everywhere()
