"""Which queries can see the sink: a sliding attention window, measured on the pattern (premise ``sink_visible``).

Gu et al.'s importance of a key is its attention averaged over *the queries that can see it* (ICLR 2025,
arXiv 2410.10781, ``eval_sink_open_source.py``); AS-1 / AS-2 average the first position's attention over
every query of their 64-token window (:mod:`lmfacts.measures.beyond`). Under a causal mask every later query
sees position 0, so the two agree. Under a sliding window of w < 64 positions (Mistral's ``sliding_window``,
Gemma 2/3's local layers, ModernBERT's local layers) query q ≥ w cannot see position 0: its attention there
is 0 because of the mask, not because the head learned anything, and the averaged share shrinks by about
w / 64 (a uniform random head: 0.038 at w = 16 instead of 0.059; a perfect sink: 0.24 < ε = 0.3). Such a
model's sink rate is not Gu's statistic, so the AS claims need this premise.

Measured, not read off the config: on one corpus prompt the pattern ``blocks.{l}.attn.hook_pattern`` of
query q at key 0 is exactly 0 at *every* head where the mask hides key 0 (HF's eager attention adds
``finfo.min`` to masked scores; the softmax underflows to exactly 0.0). An unmasked weight underflows to 0
only if key 0's score is ~100 (float32 / bfloat16; ~17 in float16) below the row's maximum in every head at
once. The HF attention module's ``sliding_window`` attribute, where it has one, is quoted beside the
measurement, never used instead of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class SinkVisibility:
    """Per block, the counted queries (q ≥ 1 of the window) whose attention on position 0 is masked.

    ``blind[l]``: those query positions of block ``l`` (0-based positions in the window; empty: the sink is
    visible to every query). ``n_tokens``: positions of the window measured. ``windows[l]``: the HF attention
    module's ``sliding_window`` attribute (None where it has none or it is unset). ``fired``: whether the
    pattern hook fired at every block (False: nothing could be measured).
    """

    blind: list[list[int]]
    n_tokens: int
    windows: list[int | None] = field(default_factory=list)
    fired: bool = True

    @property
    def visible(self) -> bool:
        """Every counted query of every block sees position 0."""
        return self.fired and not any(self.blind)

    def evidence(self) -> str:
        """One sentence with the numbers (for the premise's evidence)."""
        if not self.fired:
            return "blocks.{l}.attn.hook_pattern did not fire at every block: the mask cannot be measured"
        if self.visible:
            return (f"every query of the {self.n_tokens}-token window sees the first position at all "
                    f"{len(self.blind)} blocks")
        bad = [i for i, b in enumerate(self.blind) if b]
        first = {i: min(self.blind[i]) for i in bad}
        lo = min(first.values())
        cfg = sorted({w for i in bad if (w := self.windows[i] if i < len(self.windows) else None) is not None})
        return (f"{len(bad)} of {len(self.blind)} blocks ({', '.join(map(str, bad[:8]))}{' …' if len(bad) > 8 else ''}) "
                f"never let queries from position {lo} on (of the {self.n_tokens}-token window) see the first "
                f"position: their attention on it is exactly 0 at every head, a masked sliding window"
                + (f" (the attention modules' sliding_window = {', '.join(map(str, cfg))})" if cfg else "")
                + "; averaged over every query, the sink share would count masked zeros as 'no sink'")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values (the blind queries per block as counts and first position)."""
        return {"n_tokens": self.n_tokens, "fired": self.fired,
                "blind_queries": [len(b) for b in self.blind],
                "first_blind_query": [min(b) if b else None for b in self.blind],
                "sliding_window_attr": list(self.windows)}


def _window_attr(bridge: Any, layer: int) -> int | None:
    """The HF attention module's ``sliding_window`` (an int) for block ``layer``, else None: its own attribute
    (Gemma 2/3), else its config's where the config marks this layer sliding or marks no layer types (Mistral)."""
    attn = bridge.blocks[layer].attn
    for mod in (getattr(attn, "original_component", None), getattr(attn, "_original_component", None), attn):
        if mod is None:
            continue
        w = getattr(mod, "sliding_window", None)
        cfg = getattr(mod, "config", None)
        types = getattr(cfg, "layer_types", None)
        if w is None and cfg is not None and (not types or "sliding" in str(types[layer] if layer < len(types) else "")):
            w = getattr(cfg, "sliding_window", None)
        if isinstance(w, int) and not isinstance(w, bool) and w > 0:
            return w
    return None


def measure_sink_visibility(bridge: Any, ids: list[int], *, device: str) -> SinkVisibility:
    """Which queries of ``ids`` (one prompt's token ids, as the AS window feeds them) cannot see position 0.

    Runs ``ids`` alone through the bridge with ``blocks.{l}.attn.hook_pattern`` hooks ([1, H, T, T]
    softmax probabilities) and records, per block, the queries q ≥ 1 with ``pattern[0, h, q, 0] == 0`` at
    every head h. Raises ``ValueError`` for fewer than 2 ids.
    """
    if len(ids) < 2:
        raise ValueError(f"the sink visibility check needs a prompt of at least 2 tokens, got {len(ids)}")
    L = int(bridge.cfg.n_layers)
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(L)]
    blind: dict[int, list[int]] = {}

    def make(layer: int) -> Any:  # keyed by the block asked for (hook.name may be an alias's)
        def hook(x: torch.Tensor, hook: Any) -> None:
            masked = (x[0, :, 1:, 0] == 0).all(0)  # [T - 1]: queries 1 … T-1
            blind[layer] = [int(q) + 1 for q in torch.nonzero(masked).flatten().tolist()]
        return hook

    hooks = [(n, make(i)) for i, n in enumerate(names) if n in bridge.hook_dict]
    windows = [_window_attr(bridge, i) for i in range(L)]
    if len(hooks) < L:
        return SinkVisibility([[] for _ in range(L)], len(ids), windows, fired=False)
    with torch.inference_mode():
        bridge.run_with_hooks(torch.tensor([ids], dtype=torch.long, device=device), fwd_hooks=hooks,
                              return_type=None)
    if len(blind) < L:
        return SinkVisibility([[] for _ in range(L)], len(ids), windows, fired=False)
    return SinkVisibility([blind[i] for i in range(L)], len(ids), windows)
