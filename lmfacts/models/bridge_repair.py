"""Repairs of a booted TransformerBridge whose adapter maps a module the Hugging Face model does not have.

TransformerLens' adapters decide which components to wrap from the config, and sometimes decide wrong.
The OPT adapter (transformer_lens 4.3) wraps ``model.decoder.final_layer_norm`` as ``ln_final`` whenever
``word_embed_proj_dim == hidden_size``, but transformers builds that LayerNorm only for pre-LN OPT
(``do_layer_norm_before=True``): a post-LN OPT of equal widths has ``final_layer_norm = None``. The bridge
then installs a :class:`NormalizationBridge` with no module inside it *in place of the* ``None``, the HF
forward's ``if self.final_layer_norm is not None`` no longer skips it, and every forward pass raises
``RuntimeError: Original component not set for model.decoder.final_layer_norm`` — one traceback per claim.

:func:`drop_phantom_components` undoes exactly that, for any adapter and any component: a bridge component
that names a module (``name`` set) but wraps nothing (``original_component`` is None) is a *phantom*; the
attribute it replaced in the HF model is set back to ``None`` (what transformers built, so the model computes
what it computes without the bridge), and the component, its hook points and its ``real_components`` entry
are removed from the bridge (so ``"ln_final.hook_in" in bridge.hook_dict`` is False, as it is for every model
without a final norm). Every bridge lmfacts boots goes through
it: the loader's ``lmfacts.models.loading._finish`` (all model kinds) and the random twin
(``lmfacts.models.twin.build_random_twin``).
"""

from __future__ import annotations

from typing import Any


def phantom_components(bridge: Any) -> list[tuple[str, Any]]:
    """The bridge's phantom components: ``(path in the bridge, component)`` for every GeneralizedComponent
    that names an HF module (``name`` not None) but wraps none (no ``_original_component``). Containerless
    and symbolic components (``name`` None: OPT's fc1/fc2 MLP) are not phantoms. Reads only; ``[]`` for a
    healthy bridge."""
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    return [(path, m) for path, m in bridge.named_modules()
            if isinstance(m, GeneralizedComponent) and getattr(m, "name", None) is not None
            and m._modules.get("_original_component") is None]


def drop_phantom_components(bridge: Any) -> list[str]:
    """Remove the phantom components of ``bridge`` (see the module docstring) in place.

    For each phantom: the HF module attribute holding it is set back to ``None`` (the value transformers
    gave it: the HF forward skips it again), it is removed from its parent in the bridge and from
    ``bridge.real_components``, and the hook registry is rebuilt without its hook points. Returns one note
    per phantom (``"ln_final: the HF model has no model.decoder.final_layer_norm (None) …"``), ``[]`` when
    there is none (the bridge is untouched). Raises nothing for a healthy bridge; idempotent.
    """
    phantoms = phantom_components(bridge)
    if not phantoms:
        return []
    ids = {id(m) for _, m in phantoms}
    restored: dict[int, str] = {}
    original = getattr(bridge, "original_model", None)
    if original is not None:
        for path, module in list(original.named_modules(remove_duplicate=False)):
            for attr, child in list(module._modules.items()):
                if child is not None and id(child) in ids:
                    module._modules[attr] = None
                    restored[id(child)] = f"{path}.{attr}" if path else attr
    for module in list(bridge.modules()):
        for attr, child in list(module._modules.items()):
            if child is not None and id(child) in ids:
                del module._modules[attr]
    real = getattr(bridge, "real_components", None)
    if isinstance(real, dict):
        for key, (_, comp) in list(real.items()):
            if not isinstance(comp, list) and id(comp) in ids:
                del real[key]
    adapter = getattr(bridge, "adapter", None)
    mapping = getattr(adapter, "component_mapping", None)
    if isinstance(mapping, dict):
        for path, _ in phantoms:  # a top-level phantom (ln_final) is also a key of the adapter's mapping
            mapping.pop(path, None)
    if hasattr(bridge, "clear_hook_registry") and hasattr(bridge, "_initialize_hook_registry"):
        bridge.clear_hook_registry()
        bridge._initialize_hook_registry()
    return [f"{path}: the HF model has no {m.name} (None; the bridge mapped it anyway) — removed from the bridge, "
            f"so the model runs as transformers built it" + ("" if id(m) in restored else " (not found in the HF model)")
            for path, m in phantoms]

