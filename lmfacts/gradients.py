"""Per-example gradients of the attention Q/K/V weights under the next-token loss (BF-6).

One prompt at a time (batch of one, so nothing is averaged between examples, as in the BF post),
the mean next-token cross-entropy over the prompt's target tokens is differentiated with respect
to the query/key/value weight parameters of the chosen blocks. The parameters are found on the
bridge's attention module by name (``q``/``k``/``v``/``qkv``, ``q_proj``…, ``query``/``key``/
``value``, ``c_attn``; a multi-head latent attention's low-rank ``q_a_proj``/``q_b_proj``/``kv_a_proj_with_mqa``/
``kv_b_proj``; never the output projection); parameters that the forward does not use (for
example split views beside a fused GPT-2 ``c_attn``) get no gradient and are left out, and shared
storage is counted once. Biases are excluded (weights only).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_QKV = re.compile(r"(^|\.)(q|k|v|qkv|q_proj|k_proj|v_proj|qkv_proj|query|key|value|c_attn|query_key_value|Wqkv"
                  r"|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj)"
                  r"(\._original_component)*\.weight$")


def qkv_weight_parameters(bridge: Any, layer: int) -> dict[str, torch.nn.Parameter]:
    """The Q/K/V weight parameters of block ``layer``'s attention, by their name on that module."""
    attn = bridge.blocks[layer].attn
    out: dict[str, torch.nn.Parameter] = {}
    seen: set[int] = set()
    for name, p in attn.named_parameters():
        if _QKV.search(name) and p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            out[name] = p
    if not out:
        raise LookupError(f"no Q/K/V weight parameters found on blocks.{layer}.attn")
    return out


@dataclass(frozen=True)
class ExampleGradients:
    """Gradients of one prompt: ``grads[layer]`` is the flattened concatenation of its Q/K/V weight
    gradients (float64 numpy), ``loss`` the prompt's mean next-token loss, ``n_targets`` its targets."""

    text: str
    loss: float
    n_targets: int
    grads: dict[int, np.ndarray]
    param_names: dict[int, list[str]]


def per_example_qkv_gradients(bridge: Any, texts: Sequence[str], layers: Sequence[int], *, prepend_bos: bool,
                              n_ctx: int, device: str | torch.device = "cpu") -> list[ExampleGradients]:
    """Per-prompt gradients of the Q/K/V weights of ``layers`` (see the module docstring)."""
    from lmfacts.probe.batching import tokenize_one

    params = {i: qkv_weight_parameters(bridge, i) for i in layers}
    flat: list[tuple[int, str, torch.nn.Parameter]] = [(i, n, p) for i in layers for n, p in params[i].items()]
    was = [p.requires_grad for _, _, p in flat]
    out: list[ExampleGradients] = []
    try:
        for _, _, p in flat:
            p.requires_grad_(True)
        for text in texts:
            ids, _ = tokenize_one(bridge, text, prepend_bos=prepend_bos, n_ctx=n_ctx)
            if len(ids) < 2:
                continue
            tokens = torch.tensor([ids], dtype=torch.long, device=device)
            with torch.enable_grad():
                logits = bridge(tokens, return_type="logits")
                logp = torch.log_softmax(logits[0, :-1].float(), dim=-1)
                loss = -logp.gather(-1, tokens[0, 1:].unsqueeze(-1)).mean()
                grads = torch.autograd.grad(loss, [p for _, _, p in flat], allow_unused=True)
            per_layer: dict[int, list[np.ndarray]] = {i: [] for i in layers}
            names: dict[int, list[str]] = {i: [] for i in layers}
            for (i, name, _), g in zip(flat, grads, strict=True):
                if g is not None:
                    per_layer[i].append(g.detach().double().cpu().numpy().ravel())
                    names[i].append(name)
            if any(not v for v in per_layer.values()):
                missing = [i for i, v in per_layer.items() if not v]
                raise LookupError(f"no Q/K/V parameter of blocks {missing} received a gradient")
            out.append(ExampleGradients(text, loss.item(), len(ids) - 1,
                                        {i: np.concatenate(v) for i, v in per_layer.items()}, names))
    finally:
        for (_, _, p), flag in zip(flat, was, strict=True):
            p.requires_grad_(flag)
    return out
