"""What a model applies between its last block and its unembedding, measured on a forward pass.

The logit lens decodes a residual vector the way the model decodes its last one (tuned-lens ``Unembed``:
``unembedding(final_norm(h))``). "The final norm" is an assumption about the architecture; what sits
between the last block's output and the unembedding varies:

======================================  ===================================================================
most pre-norm decoders                  ``ln_final``
OPT-350m (post-LN, ``word_embed_proj_dim`` 512 ≠ ``hidden_size`` 1024)  ``project_out`` (a Linear 1024 → 512), no final norm
post-LN OPT of equal widths             nothing: the blocks' outputs are already normalised
======================================  ===================================================================

:func:`readout_path` measures it: the top-level bridge components (``ln_final``, ``project_out``, …) whose
``hook_in`` fires after the last block's ``hook_out`` and before ``unembed.hook_in``, in that order, on one
forward pass that stops before the unembedding. :func:`readout_decode` composes them with the unembedding.
Whether that composition *is* the model's head path (a module the adapter leaves unwrapped runs unhooked:
pre-LN OPT with a projection keeps its final LayerNorm outside the bridge) is the ``lens_readout`` premise's
numeric check (:func:`lmfacts.rebuild.measure_lens_readout`), not assumed here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

#: Pseudo-names in the firing order recorded by :func:`readout_path`.
_LAST_BLOCK, _UNEMBED = "<last block>", "<unembed>"


def top_level_components(bridge: Any) -> list[str]:
    """Names of the bridge's direct children that are bridge components with a ``hook_in`` (``embed``,
    ``ln_final``, ``project_out``, ``unembed`` …; not the ``blocks`` list)."""
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    return [name for name, m in bridge.named_children()
            if isinstance(m, GeneralizedComponent) and hasattr(m, "hook_in")]


def readout_path(bridge: Any, ids: Sequence[int], *, device: str | torch.device = "cpu") -> list[str]:
    """The top-level bridge components run between the last block and the unembedding, in forward order.

    ``ids``: one tokenised prompt (≥ 1 token). One forward pass under ``inference_mode``, stopped at
    ``unembed.hook_in`` (no logits). Returns e.g. ``["ln_final"]``, ``["project_out"]`` or ``[]`` (nothing:
    the last block's output is what the unembedding reads). Raises ``ValueError`` when the bridge has no
    ``unembed.hook_in`` or the last block's ``hook_out`` / the unembedding never fired (no such path).
    """
    from transformer_lens.model_bridge.exceptions import StopAtLayerException

    names = set(bridge.hook_dict)
    last = f"blocks.{int(bridge.cfg.n_layers) - 1}.hook_out"
    if "unembed.hook_in" not in names or last not in names:
        raise ValueError(f"the bridge has no {'unembed.hook_in' if 'unembed.hook_in' not in names else last} "
                         "hook point: no readout path to measure")
    order: list[str] = []

    def mark(tag: str) -> Callable[[torch.Tensor, Any], None]:
        def hook(x: torch.Tensor, hook: Any) -> None:
            order.append(tag)
        return hook

    def stop(x: torch.Tensor, hook: Any) -> None:
        order.append(_UNEMBED)
        raise StopAtLayerException(x)

    comps = [c for c in top_level_components(bridge) if c != "unembed" and f"{c}.hook_in" in names]
    hooks = [(f"{c}.hook_in", mark(c)) for c in comps] + [(last, mark(_LAST_BLOCK)), ("unembed.hook_in", stop)]
    tokens = torch.tensor([list(ids)], dtype=torch.long, device=device)
    with torch.inference_mode():
        try:
            bridge.run_with_hooks(tokens, fwd_hooks=hooks, return_type=None)
        except StopAtLayerException:
            pass
    if _LAST_BLOCK not in order or _UNEMBED not in order:
        raise ValueError(f"on one prompt, {'the last block' if _LAST_BLOCK not in order else 'the unembedding'} "
                         f"never ran (fired: {order})")
    start = len(order) - 1 - order[::-1].index(_LAST_BLOCK)
    end = order.index(_UNEMBED, start)
    return [c for c in order[start + 1:end] if c not in (_LAST_BLOCK, _UNEMBED)]


def readout_decode(bridge: Any, path: Sequence[str],
                   unembed: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x ↦ unembed(path[-1](… path[0](x)))``: ``[n, d_model] → [n, V]``, the bridge's components ``path``
    (from :func:`readout_path`) then ``unembed`` (the unembedding and the head's output transform, e.g.
    :func:`lmfacts.measures.beyond.bridge_unembed`). Raises ``AttributeError`` for a name the bridge lacks."""
    modules = [getattr(bridge, name) for name in path]

    def decode(x: torch.Tensor) -> torch.Tensor:
        for module in modules:
            x = module(x)
        return unembed(x)
    return decode
