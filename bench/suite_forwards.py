"""The suite's own compute floor: record every forward pass a claim run makes, then replay them bare.

``bench/suite_vs_floor.py --replay`` loads this module into the suite's pytest process as a plugin
(``-p suite_forwards`` with ``bench/`` on ``PYTHONPATH``; ``LMFACTS_RECORD_FORWARDS=FILE``). It records,
for every ``run_with_hooks`` call of any bridge (the model's and its random twin's), the token ids
``[b, p]``, the attention mask, the return type and the hook point where the pass stopped early (the
probe's and the per-prompt passes' stop before the unembedding, if any), and for every logit-lens batch
the rows × points it decoded. :func:`replay` then runs the same passes through the loaded model with no
hooks (an early stop where the suite stopped) and the same number of lens decodings (the model's final
norm and unembedding on random rows), and times them.

What the replay measures is what the claims' sample sizes cost at the floor's own speed — the corpus
pass, the twin's pass, the ablation passes, one pass per Hypothesis example, the premises' one-prompt
passes, the lens's GEMMs — with none of lmfacts' reductions. ``load + replay + svdvals`` is therefore a
lower bound of the suite's wall time under its current specification (gradient passes of BF-6 and the
statistics themselves come on top): no engineering of the reductions can take the suite below it;
only smaller samples can. Forward passes of the twin are replayed through the model itself (same
architecture, same cost).
"""

from __future__ import annotations

import os
import time
from typing import Any

_RECORDS: list[dict[str, Any]] = []
_LENS: list[tuple[int, int]] = []


def _stop_point(hooks: Any) -> str | None:
    """The hook point of an early-stop hook in ``fwd_hooks`` (lmfacts' stop hooks are closures named ``stop``)."""
    for name, fn in hooks or ():
        if getattr(fn, "__name__", "") == "stop":
            return str(name)
    return None


def pytest_configure(config: Any) -> None:
    """Wrap ``BridgeCore.run_with_hooks`` and ``LensReduction.end`` to record (only with LMFACTS_RECORD_FORWARDS)."""
    if not os.environ.get("LMFACTS_RECORD_FORWARDS"):
        return
    import functools

    from transformer_lens.model_bridge import bridge_core

    from lmfacts.measures import beyond

    run = bridge_core.BridgeCore.run_with_hooks

    @functools.wraps(run)
    def recorded(self: Any, *args: Any, **kw: Any) -> Any:
        tokens = args[0] if args else kw.get("input")
        mask = kw.get("attention_mask")
        if hasattr(tokens, "detach"):
            _RECORDS.append({"tokens": tokens.detach().cpu().clone(),
                             "mask": None if mask is None else mask.detach().cpu().clone(),
                             "return_type": kw.get("return_type", "logits"), "stop": _stop_point(kw.get("fwd_hooks")),
                             "twin": str(getattr(self.cfg, "model_name", "")).startswith("lmfacts-twin/")})
        return run(self, *args, **kw)

    bridge_core.BridgeCore.run_with_hooks = recorded  # type: ignore[method-assign]
    end = beyond.LensReduction.end

    @functools.wraps(end)
    def lens_end(self: Any) -> None:
        if self._rows is not None:
            _LENS.append((int(self._rows[0].numel()), int(self.n_layers) + 1))
        end(self)

    beyond.LensReduction.end = lens_end  # type: ignore[method-assign]


def pytest_unconfigure(config: Any) -> None:
    """Write the records (``torch.save``) to ``LMFACTS_RECORD_FORWARDS``."""
    path = os.environ.get("LMFACTS_RECORD_FORWARDS")
    if path:
        import torch

        torch.save({"forwards": _RECORDS, "lens": _LENS}, path)


def replay(model: str, path: str, device: str = "cpu") -> dict[str, Any]:
    """Load ``model`` and replay the recorded passes bare; returns seconds per kind, token counts and call counts.

    Kinds: ``corpus`` (stopped before the unembedding, batches of > 1 prompt: the probe passes of the model and
    its twin), ``one-prompt`` (stopped, one prompt: Hypothesis examples and premises), ``logits`` (full
    passes: ablation losses and premises), ``lens`` (decoding the recorded rows × points, 512 rows per GEMM as
    the suite does).
    """
    import torch
    from transformer_lens.model_bridge.exceptions import StopAtLayerException

    from lmfacts.measures.beyond import LENS_DECODE_ROWS, bridge_decode, bridge_readout_path
    from lmfacts.models.loading import load_model

    data = torch.load(path, weights_only=False)
    bridge = load_model(model, device=device).bridge
    out: dict[str, Any] = {}

    def stop_at(at: str) -> list[tuple[str, Any]]:
        def stop(x: torch.Tensor, hook: Any) -> None:
            raise StopAtLayerException(x)
        return [(at, stop)]

    def kind(r: dict[str, Any]) -> str:
        if r["stop"] is None:
            return "logits"
        return "one-prompt" if r["tokens"].shape[0] == 1 else "corpus"

    with torch.inference_mode():
        for r in data["forwards"]:
            k = kind(r)
            mask = None if r["mask"] is None else r["mask"].to(device)
            t0 = time.perf_counter()
            try:
                bridge.run_with_hooks(r["tokens"].to(device), attention_mask=mask,
                                      fwd_hooks=stop_at(r["stop"]) if r["stop"] else [],
                                      return_type=r["return_type"] if r["stop"] is None else None)
            except StopAtLayerException:
                pass
            s = out.setdefault(k, {"seconds": 0.0, "calls": 0, "tokens": 0, "twin_calls": 0})
            s["seconds"] += time.perf_counter() - t0
            s["calls"] += 1
            s["tokens"] += int(r["tokens"].numel())
            s["twin_calls"] += int(r["twin"])
        rows = sum(n * p for n, p in data["lens"])
        if rows:
            decode = bridge_decode(bridge, bridge_readout_path(bridge))
            d = int(bridge.cfg.d_model)
            g = torch.Generator(device="cpu").manual_seed(0)
            t0 = time.perf_counter()
            for r0 in range(0, rows, LENS_DECODE_ROWS):
                decode(torch.randn(min(LENS_DECODE_ROWS, rows - r0), d, generator=g).to(device))
            out["lens"] = {"seconds": time.perf_counter() - t0, "calls": -(-rows // LENS_DECODE_ROWS), "tokens": rows,
                           "twin_calls": 0}
    return out
