"""Uniform weight views across every TransformerBridge family (nothing model-specific in claims).

Per layer: W_Q, W_K, W_V [heads, d_model, d_head] (grouped-query K/V expanded to one per query
head; None, with ``LayerWeights.attn_note`` saying why, where the attention has no per-head projection of
the input: multi-head latent attention), W_O [heads, d_head, d_model], W_OV = W_V·W_O per head, W_in / W_gate [d_model, d_mlp] (None, with
``LayerWeights.mlp_note`` saying why, where the MLP is a mixture of experts),
W_out [d_mlp, d_model], biases (None where the model has none), norm gains and biases; plus the
embedding, positional embedding and unembedding. All tensors are detached float32 copies made
under ``no_grad``. Which TransformerLens processing the weights carry (``raw`` or ``compat``) is
``WeightViews.processing``, recorded by every claim that uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lmfacts.models.metadata import EXPERT_COUNT_KEYS

READING = ("W_Q", "W_K", "W_V", "W_in", "W_gate")
WRITING = ("W_O", "W_out")


@dataclass
class LayerWeights:
    """The weights of one block, in TransformerLens orientation (x @ W)."""

    #: None where the attention has no per-head Q / K / V matrix (multi-head latent attention: ``attn_note``).
    W_Q: torch.Tensor | None
    W_K: torch.Tensor | None
    W_V: torch.Tensor | None
    W_O: torch.Tensor | None
    b_Q: torch.Tensor | None
    b_K: torch.Tensor | None
    b_V: torch.Tensor | None
    b_O: torch.Tensor | None
    #: None where the block's MLP has no single input / output matrix (a mixture of experts: ``mlp_note`` says so).
    W_in: torch.Tensor | None
    W_gate: torch.Tensor | None
    W_out: torch.Tensor | None
    b_in: torch.Tensor | None
    b_out: torch.Tensor | None
    ln1_w: torch.Tensor | None
    ln1_b: torch.Tensor | None
    ln2_w: torch.Tensor | None
    ln2_b: torch.Tensor | None
    #: Bias of the gate projection (gated MLPs): present where the checkpoint has one (``mlp_bias``) and where
    #: TransformerLens' fold_ln folds a LayerNorm bias into the gate (compat processing of StableLM-style blocks).
    b_gate: torch.Tensor | None = None
    #: Why W_in / W_out are None (e.g. "blocks.3.mlp is a mixture of experts …"); None for a dense MLP.
    mlp_note: str | None = None
    #: Why W_Q / W_K / W_V are None (e.g. "blocks.0.attn is multi-head latent attention …"); None otherwise.
    attn_note: str | None = None

    def matrix(self, name: str) -> torch.Tensor | None:
        """A weight as one 2-D matrix [d_in, d_out] (heads concatenated along the head axis)."""
        w = getattr(self, name)
        if w is None:
            return None
        if name in ("W_Q", "W_K", "W_V"):
            return w.permute(1, 0, 2).reshape(w.shape[1], -1)  # [d_model, heads·d_head]
        if name == "W_O":
            return w.reshape(-1, w.shape[-1])  # [heads·d_head, d_model]
        return w


def _t(x: object) -> torch.Tensor | None:
    if x is None:
        return None
    assert isinstance(x, torch.Tensor)
    return x.detach().float().clone()


def _attr(obj: object, name: str) -> torch.Tensor | None:
    """``obj.<name>`` as a float32 copy, None where it has none. TransformerLens' multi-head latent attention
    bridge raises NotImplementedError for the per-head weights it cannot express (W_Q … b_O): also None."""
    try:
        w = getattr(obj, name)
    except (AttributeError, NotImplementedError):
        return None
    return _t(w) if isinstance(w, torch.Tensor) else None


def attn_weight(attn: object, name: str, n_heads: int, d_model: int) -> torch.Tensor | None:
    """Block attention ``attn``'s ``name`` (``W_Q``, ``W_K``, ``W_V``, ``W_O``, ``b_*``) as TransformerLens
    orients it, a float32 copy, K/V heads as stored (not expanded); None where the attention has none.

    Multi-head latent attention (DeepSeek-V2/V3 MLA) has no per-head W_Q / W_K / W_V (its queries and keys /
    values come out of low-rank projections with a norm between: :func:`attention_structure`) and its bridge
    raises for all four; its output projection is still a plain concatenated-heads map, read from the ``o``
    projection as [heads, d_head, d_model] (``lmfacts.rebuild.measure_rebuild`` checks it against the hooks,
    ``o_from_z``). Raises nothing.
    """
    w = _attr(attn, name)
    if w is not None or name != "W_O":
        return w
    o = _attr(getattr(attn, "o", None), "weight")  # nn.Linear orientation [d_model, heads·d_head]
    if o is None or o.ndim != 2 or o.shape[0] != d_model or n_heads <= 0 or o.shape[1] % n_heads:
        return None
    return o.T.reshape(n_heads, o.shape[1] // n_heads, d_model).contiguous()


#: Submodules of a multi-head latent attention (DeepSeek-V2/V3, transformers' naming).
_LATENT_PROJECTIONS = ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj")


def attention_structure(attn: object, path: str) -> str:
    """Why a block's attention has no per-head W_Q / W_K / W_V, in words, read off its modules (never the model's
    name): a multi-head latent attention is recognised by its low-rank projections (``kv_a_proj_with_mqa``,
    ``kv_b_proj`` …); the text names the wrapped module's class and the projections found. Raises nothing."""
    inner = getattr(attn, "original_component", None) or attn
    cls = type(inner).__name__
    found = [n for n in _LATENT_PROJECTIONS if hasattr(inner, n) or hasattr(attn, n)]
    if any(n.startswith("kv_") for n in found):
        return (f"{path} is multi-head latent attention ({cls}: queries and keys/values through low-rank "
                f"projections {', '.join(found)} with a norm on the latent): no per-head W_Q / W_K / W_V")
    return f"{path} ({cls}) exposes no per-head W_Q / W_K / W_V"


def _expand_kv(w: torch.Tensor | None, n_heads: int) -> torch.Tensor | None:
    """Repeat grouped K/V heads so there is one per query head (GQA)."""
    if w is None or w.shape[0] == n_heads:
        return w
    return w.repeat_interleave(n_heads // w.shape[0], dim=0)


#: Batched expert parameters ([experts, ·, ·], transformers' MoE vocabulary); gate_up_proj holds gate then up.
_BATCHED_EXPERT_NAMES = ("gate_up_proj", "gate_proj", "up_proj", "down_proj")


def _experts_count(module: object) -> int | None:
    """Number of experts of an MoE module (its config's or its own attribute), else None."""
    for owner in (module, getattr(module, "experts", None), getattr(module, "config", None)):
        for name in EXPERT_COUNT_KEYS:
            n = getattr(owner, name, None) if owner is not None else None
            if isinstance(n, int) and n > 0:
                return n
    experts = getattr(module, "experts", None)
    if isinstance(experts, torch.nn.ModuleList):
        return len(experts)
    for name, p in (module.named_parameters() if isinstance(module, torch.nn.Module) else ()):
        if p.ndim == 3 and name.rpartition(".")[2] in _BATCHED_EXPERT_NAMES:
            return int(p.shape[0])
    return None


def mlp_structure(mlp: object, path: str) -> str:
    """Why a block's MLP has no single W_in / W_out, in words, read off its modules (never its model's name).

    ``mlp``: the bridge's MLP component (``bridge.blocks[i].mlp``); ``path``: its name, for the text. A
    mixture of experts is recognised by an expert count (the module's or its config's ``num_experts`` /
    ``num_local_experts`` / …, a ``ModuleList`` of experts, batched 3-D expert parameters) or by a ``gate`` /
    ``router`` beside ``experts``; the text names the wrapped module's class, the number of experts and whether
    a shared expert is present. Raises nothing.
    """
    inner = getattr(mlp, "original_component", None) or getattr(mlp, "_original_component", None) or mlp
    cls = type(inner).__name__
    n = _experts_count(inner)
    shared = any(hasattr(inner, a) for a in ("shared_expert", "shared_experts", "shared_mlp"))
    router = any(hasattr(inner, a) for a in ("gate", "router"))
    if n is not None or (router and hasattr(inner, "experts")):
        what = f"a mixture of experts ({cls}: a router over {n if n is not None else 'several'} experts" + (
            " plus a shared expert" if shared else "") + ")"
        return f"{path} is {what}: no single W_in / W_out"
    return f"{path} ({cls}) exposes no W_in / W_out"


def moe_matrices(mlp: object, d_model: int) -> tuple[list[tuple[str, torch.Tensor]], dict[str, str]]:
    """Every weight matrix inside a mixture-of-experts block, one 2-D float32 copy each, as stored.

    ``mlp``: the bridge's MLP component (``bridge.blocks[i].mlp``) or the HF module itself. Returns
    ``(matrices, unread)``: ``matrices`` is ``[(name, matrix)]`` named by the parameter's path inside the MoE
    module (bridge wrappers dropped): batched experts split per expert — ``experts.down_proj[3]`` — and a fused
    ``gate_up_proj`` split into ``experts.gate_proj[e]`` and ``experts.up_proj[e]`` (the first and second half of
    its output axis, transformers' ``.chunk(2, dim=-1)``; or, where the experts module declares the interleaved
    layout (transformers' ``is_concatenated=False``: GPT-OSS, gate and up columns alternating, ``[..., ::2]`` /
    ``[..., 1::2]``), its even and odd output columns; the output axis is the one that is not ``d_model``,
    or the layout flag ``is_transposed``); 2-D parameters (the router, a shared expert's projections, its
    gate) as they are, ``shared_expert.gate_proj`` … . Biases are not weight matrices and are left out, the
    experts' stacked ones (``gate_up_proj_bias`` / ``down_proj_bias`` [experts, ·]) included. ``unread``:
    ``{path: reason}`` for 3-D parameters whose layout cannot be established (recorded, never guessed).
    Orientation is irrelevant to the statistics that use this (entry distributions, singular values). Raises
    nothing.
    """
    inner = mlp
    while isinstance(getattr(inner, "original_component", None), torch.nn.Module):
        inner = inner.original_component  # type: ignore[attr-defined]
    out: list[tuple[str, torch.Tensor]] = []
    unread: dict[str, str] = {}
    if not isinstance(inner, torch.nn.Module):
        return out, unread
    with torch.no_grad():
        for path, p in inner.named_parameters():
            prefix, _, leaf = path.rpartition(".")
            name = ".".join(seg for seg in path.split(".") if seg != "_original_component")
            if name.endswith(".weight"):
                name = name[: -len(".weight")]
            if leaf == "bias" or leaf.endswith("_bias"):
                continue  # a bias, not a weight matrix (GPT-OSS stacks its experts' biases as [experts, ·])
            if p.ndim == 2:
                out.append((name, p.detach().float().clone()))
                continue
            if p.ndim != 3:
                continue
            if leaf not in _BATCHED_EXPERT_NAMES:
                unread[name] = f"unrecognised batched parameter {tuple(p.shape)}"
                continue
            w = p.detach().float()
            if leaf == "gate_up_proj":
                owner = inner.get_submodule(prefix) if prefix else inner
                flag = getattr(owner, "is_transposed", None)
                axis = (2 if flag else 1) if isinstance(flag, bool) else (
                    1 if w.shape[2] == d_model and w.shape[1] != d_model else
                    2 if w.shape[1] == d_model and w.shape[2] != d_model else None)
                if axis is None or w.shape[axis] % 2:
                    unread[name] = f"fused gate/up projection {tuple(p.shape)}: its output axis is ambiguous"
                    continue
                base = name.rpartition(".")[0]
                if getattr(owner, "is_concatenated", True) is False:  # interleaved: gate0, up0, gate1, up1, …
                    idx = torch.arange(w.shape[axis])
                    gate, up = w.index_select(axis, idx[0::2]), w.index_select(axis, idx[1::2])
                else:
                    gate, up = w.chunk(2, dim=axis)
                for e in range(w.shape[0]):
                    out.append((f"{base + '.' if base else ''}gate_proj[{e}]", gate[e].clone()))
                    out.append((f"{base + '.' if base else ''}up_proj[{e}]", up[e].clone()))
                continue
            out += [(f"{name}[{e}]", w[e].clone()) for e in range(w.shape[0])]
    return out, unread


def _require_ov(layer: LayerWeights) -> None:
    if layer.W_V is None or layer.W_O is None:
        raise ValueError(f"no W_OV: {layer.attn_note or 'the attention has no per-head W_V / W_O'}")


class WeightViews:
    """Weight accessors over a TransformerBridge; see the module docstring."""

    def __init__(self, bridge: object, processing: str) -> None:
        self.bridge = bridge
        self.processing = processing
        self.cfg = bridge.cfg  # type: ignore[attr-defined]
        self.n_layers: int = self.cfg.n_layers
        self.n_heads: int = self.cfg.n_heads
        #: Norm gains stored as offsets and applied as ``1 + w`` (Gemma; TransformerLens cfg.rmsnorm_uses_offset).
        self.gain_offset: bool = bool(getattr(self.cfg, "rmsnorm_uses_offset", False))

    def norm_gain(self, norm: object) -> torch.Tensor | None:
        """The *effective* gain of a norm module: its ``weight``, plus 1 where gains are stored as offsets."""
        w = _attr(norm, "weight")
        return w + 1.0 if w is not None and self.gain_offset else w

    def mlp_norm_name(self, i: int) -> str | None:
        """The name of the norm block ``i``'s MLP reads through: ``"ln2"``, or ``"ln1"`` in a parallel block with a
        single norm (Phi, GPT-J, Falcon-7B, Cohere: the attention and the MLP both read ln1(resid_pre)); None where
        the block has neither (no norm before the MLP). Raises IndexError for a block out of range."""
        if not 0 <= i < self.n_layers:
            raise IndexError(f"layer {i} out of range for a {self.n_layers}-layer model")
        blk = self.bridge.blocks[i]  # type: ignore[attr-defined]
        if hasattr(blk, "ln2"):
            return "ln2"
        return "ln1" if hasattr(blk, "ln1") and bool(getattr(self.cfg, "parallel_attn_mlp", False)) else None

    def layer(self, i: int) -> LayerWeights:
        """The weights of block ``i``."""
        if not 0 <= i < self.n_layers:
            raise IndexError(f"layer {i} out of range for a {self.n_layers}-layer model")
        blk = self.bridge.blocks[i]  # type: ignore[attr-defined]
        attn, mlp = blk.attn, blk.mlp
        # The norm the MLP reads through (mlp_norm_name): checked against mlp.hook_pre by
        # lmfacts.rebuild.measure_rebuild (mlp_pre_from_ln2), never believed unchecked.
        norm_name = self.mlp_norm_name(i)
        mlp_norm = getattr(blk, norm_name) if norm_name is not None else None
        h, d = self.n_heads, int(self.cfg.d_model)
        with torch.no_grad():
            w_q = attn_weight(attn, "W_Q", h, d)
            w_v = attn_weight(attn, "W_V", h, d)
            return LayerWeights(
                W_Q=w_q, W_K=_expand_kv(attn_weight(attn, "W_K", h, d), h),
                W_V=_expand_kv(w_v, h), W_O=attn_weight(attn, "W_O", h, d),
                attn_note=None if w_q is not None and w_v is not None else attention_structure(attn, f"blocks.{i}.attn"),
                b_Q=_attr(attn, "b_Q"), b_K=_expand_kv(_attr(attn, "b_K"), self.n_heads),
                b_V=_expand_kv(_attr(attn, "b_V"), self.n_heads), b_O=_attr(attn, "b_O"),
                W_in=(w_in := _attr(mlp, "W_in")), W_gate=_attr(mlp, "W_gate"), W_out=(w_out := _attr(mlp, "W_out")),
                b_in=_attr(mlp, "b_in"), b_out=_attr(mlp, "b_out"), b_gate=_attr(mlp, "b_gate"),
                mlp_note=None if w_in is not None and w_out is not None else mlp_structure(mlp, f"blocks.{i}.mlp"),
                ln1_w=self.norm_gain(blk.ln1) if hasattr(blk, "ln1") else None,
                ln1_b=_attr(blk.ln1, "bias") if hasattr(blk, "ln1") else None,
                ln2_w=self.norm_gain(mlp_norm) if mlp_norm is not None else None,
                ln2_b=_attr(mlp_norm, "bias") if mlp_norm is not None else None,
            )

    def layers(self) -> Iterator[tuple[int, LayerWeights]]:
        """Every block's weights, one block at a time (memory stays O(one layer))."""
        for i in range(self.n_layers):
            yield i, self.layer(i)

    @staticmethod
    def ov(layer: LayerWeights) -> torch.Tensor:
        """W_OV = W_V · W_O per head: [heads, d_model, d_model]. Raises ValueError where the attention has no
        per-head W_V (``layer.attn_note``)."""
        _require_ov(layer)
        return torch.einsum("hdk,hke->hde", layer.W_V, layer.W_O)

    @staticmethod
    def ov_frobenius(layer: LayerWeights) -> torch.Tensor:
        """‖W_V W_O‖_F per head without forming the d×d product: sqrt(Σ (W_VᵀW_V) ∘ (W_O W_Oᵀ)). Raises
        ValueError where the attention has no per-head W_V (``layer.attn_note``)."""
        _require_ov(layer)
        gv = torch.einsum("hdk,hdl->hkl", layer.W_V.double(), layer.W_V.double())
        go = torch.einsum("hke,hle->hkl", layer.W_O.double(), layer.W_O.double())
        return (gv * go).sum((1, 2)).clamp(min=0).sqrt().float()

    def embedding(self) -> torch.Tensor:
        """W_E [vocab, d_model]."""
        with torch.no_grad():
            return _t(self.bridge.W_E)  # type: ignore[attr-defined]

    def positional(self) -> torch.Tensor | None:
        """W_pos [n_ctx, d_model] for learned positions, else None."""
        with torch.no_grad():
            return _attr(self.bridge, "W_pos")

    def unembedding(self) -> torch.Tensor:
        """W_U [d_model, vocab]."""
        with torch.no_grad():
            return _t(self.bridge.W_U)  # type: ignore[attr-defined]

    def final_norm(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(gain, bias) of the final norm; bias None for RMSNorm."""
        ln = getattr(self.bridge, "ln_final", None)
        if ln is None:
            return None, None
        with torch.no_grad():
            return self.norm_gain(ln), _attr(ln, "bias")

    def norm_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every norm vector of the model, gains (effective: :meth:`norm_gain`) and biases.

        Found by walking the model's modules, not by a list of names: every module whose class is a
        norm (``…Norm…`` — LayerNorm, RMSNorm, their bridges) with a 1-D ``weight`` or ``bias`` — the
        blocks' ln1/ln2, extra sublayer norms (Gemma 2's ln1_post/ln2_post, q_norm/k_norm), the
        final norm and any embedding norm. A vector shared by several modules is yielded once, under
        its shortest bridge path (``blocks.3.ln1_post`` rather than the wrapped HF module's path).
        Names are ``"<module path>.weight"`` / ``".bias"``, e.g. ``"blocks.3.ln1.weight"``,
        ``"blocks.0.attn.q_norm.weight"``, ``"ln_final.weight"``; the order is the modules' order.
        Parameter-free norms (LayerNormPre after fold_ln, OLMo's non-parametric LayerNorm) yield nothing.
        """
        best: dict[tuple[int, tuple[int, ...]], tuple[tuple[int, int], str, object, str]] = {}
        order: list[tuple[int, tuple[int, ...]]] = []
        for path, mod in self.bridge.named_modules(remove_duplicate=False):  # type: ignore[attr-defined]
            if "norm" not in type(mod).__name__.lower():
                continue
            for kind in ("weight", "bias"):
                try:
                    p = getattr(mod, kind)
                except AttributeError:
                    continue
                if not isinstance(p, torch.Tensor) or p.ndim != 1:
                    continue
                parts = [seg for seg in path.split(".") if seg != "_original_component"]
                rank = (path.count("_original_component"), len(path))
                key = (p.data_ptr(), tuple(p.shape))
                if key not in best:
                    order.append(key)
                if key not in best or rank < best[key][0]:
                    best[key] = (rank, ".".join(parts), mod, kind)
        with torch.no_grad():
            for key in order:
                _, name, mod, kind = best[key]
                v = self.norm_gain(mod) if kind == "weight" else _attr(mod, "bias")
                if v is not None:
                    yield f"{name}.{kind}", v

    def matrices(self, names: tuple[str, ...] = READING + WRITING) -> Iterator[tuple[str, int, torch.Tensor]]:
        """(weight name, layer, 2-D matrix) for every block and every requested weight that exists."""
        for i, lw in self.layers():
            for name in names:
                m = lw.matrix(name)
                if m is not None:
                    yield name, i, m
