"""Block ablations as forward hooks, and the next-token loss they are judged by (RS-3, RS-4).

Nothing here copies a model: every ablation is a list of ``(hook name, fn)`` pairs for
``bridge.run_with_hooks``.

* **Skip a block** (:func:`skip_block_hooks`): the block's output is replaced by its input. A hook on
  ``blocks.{i}.hook_resid_pre`` saves the stream entering block i; a hook on
  ``blocks.{i}.hook_resid_post`` returns it, so block i+1 reads exactly what block i read. Skipping
  consecutive blocks composes (each saves what the previous one passed on).
* **Remove a block's skip connection** (:func:`remove_skip_hooks`): the block outputs its sublayers
  only, without the residual term.

  - Sequential block (GPT-2, Llama, …; ``resid_mid`` exists): ``resid_mid := attn_out`` (a hook on
    ``blocks.{i}.hook_resid_mid``, which is the input of ``ln2``, so the MLP reads ``ln2(attn_out)``),
    then ``resid_post := mlp_out`` (a hook on ``blocks.{i}.hook_resid_post`` returning the
    ``hook_mlp_out`` value saved in the same forward). The block computes
    ``y = MLP(ln2(Attn(ln1(x))))``.
  - Parallel block (GPT-NeoX; no ``resid_mid``): ``resid_post := attn_out + mlp_out``, i.e.
    ``y = Attn(ln1(x)) + MLP(ln2(x))``.

:func:`next_token_loss` is the mean cross-entropy of predicting token t+1 from positions ≤ t, over
every real (non-padding) target token of every prompt (the target after BOS counts; BOS itself is
never a target), as logsumexp(logits) − logit[target] in float32, summed in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

Hook = tuple[str, Callable[..., Any]]


def skip_block_hooks(layers: Iterable[int]) -> list[Hook]:
    """Hooks that replace each listed block's output (``resid_post``) by its input (``resid_pre``)."""
    hooks: list[Hook] = []
    for i in sorted(set(layers)):
        saved: dict[str, torch.Tensor] = {}

        def save(x: torch.Tensor, hook: Any, saved: dict[str, torch.Tensor] = saved) -> None:
            saved["pre"] = x

        def restore(x: torch.Tensor, hook: Any, saved: dict[str, torch.Tensor] = saved) -> torch.Tensor:
            return saved.pop("pre")

        hooks += [(f"blocks.{i}.hook_resid_pre", save), (f"blocks.{i}.hook_resid_post", restore)]
    return hooks


def remove_skip_hooks(layer: int, *, parallel: bool) -> list[Hook]:
    """Hooks that remove the skip connection of block ``layer`` (see the module docstring)."""
    saved: dict[str, torch.Tensor] = {}

    def save(key: str) -> Callable[..., None]:
        def fn(x: torch.Tensor, hook: Any) -> None:
            saved[key] = x
        return fn

    def mid(x: torch.Tensor, hook: Any) -> torch.Tensor:
        return saved["attn"]

    def post(x: torch.Tensor, hook: Any) -> torch.Tensor:
        if parallel:
            return saved.pop("attn") + saved.pop("mlp")
        saved.pop("attn", None)
        return saved.pop("mlp")

    i = layer
    hooks: list[Hook] = [(f"blocks.{i}.hook_attn_out", save("attn"))]
    if not parallel:
        hooks.append((f"blocks.{i}.hook_resid_mid", mid))
    hooks += [(f"blocks.{i}.hook_mlp_out", save("mlp")), (f"blocks.{i}.hook_resid_post", post)]
    return hooks


@dataclass(frozen=True)
class LossResult:
    """Mean next-token loss (nats) over ``n_targets`` target tokens, and the per-prompt means.

    ``per_prompt_targets[i]``: target tokens of prompt ``i`` (``per_prompt[i]`` is NaN where 0), so
    ``loss == Σ per_prompt[i]·per_prompt_targets[i] / n_targets`` over the prompts with targets.
    """

    loss: float
    n_targets: int
    per_prompt: list[float]
    per_prompt_targets: list[int] = field(default_factory=list)


#: padded tokens per forward pass of :func:`next_token_loss` (its [b, p, vocab] logits are the peak memory:
#: 1024 tokens × 49,152 vocab × 4 bytes = 0.2 GB for SmolLM2)
LOSS_BATCH_TOKENS = 1024


def tokenize_texts(bridge: Any, texts: Sequence[str], *, prepend_bos: bool, n_ctx: int) -> list[list[int]]:
    """Token ids of every text (truncated to ``n_ctx``), to tokenise once for several :func:`next_token_loss` runs.

    Raises as :func:`lmfacts.probe.batching.tokenize_one`.
    """
    from lmfacts.probe.batching import tokenize_one

    return [tokenize_one(bridge, t, prepend_bos=prepend_bos, n_ctx=n_ctx)[0] for t in texts]


def next_token_loss(bridge: Any, texts: Sequence[str], *, fwd_hooks: Sequence[Hook] = (), prepend_bos: bool,
                    padding_side: str, pad_id: int, n_ctx: int, device: str | torch.device = "cpu",
                    batch_size: int = 16, batch_tokens: int = LOSS_BATCH_TOKENS,
                    rows: Sequence[Sequence[int]] | None = None) -> LossResult:
    """Mean next-token cross-entropy of ``texts`` under ``fwd_hooks`` (see the module docstring).

    Prompts are sorted by length and packed up to ``batch_tokens`` padded tokens (at most ``batch_size``
    prompts) per forward pass, as the probe does; ``per_prompt`` is in the order of ``texts``. ``rows``: the
    texts' token ids from :func:`tokenize_texts` (tokenised here when None). Raises ValueError for no
    prompt / no target token, FloatingPointError for NaN/inf logits.
    """
    from lmfacts.probe.batching import pad_rows, plan_batches

    if not texts:
        raise ValueError("next_token_loss needs at least one prompt")
    if rows is None:
        rows = tokenize_texts(bridge, texts, prepend_bos=prepend_bos, n_ctx=n_ctx)
    if len(rows) != len(texts):
        raise ValueError(f"next_token_loss: {len(rows)} token rows for {len(texts)} texts")
    total, count = 0.0, 0
    per_prompt: list[float] = [float("nan")] * len(texts)
    targets: list[int] = [0] * len(texts)
    with torch.inference_mode():
        for index in plan_batches([len(r) for r in rows], batch_tokens=batch_tokens, max_prompts=batch_size):
            batch = pad_rows(bridge, [rows[i] for i in index], [texts[i] for i in index], [], prepend_bos=prepend_bos,
                             padding_side=padding_side, pad_id=pad_id, device=device)
            logits = bridge.run_with_hooks(batch.tokens, fwd_hooks=list(fwd_hooks),
                                           attention_mask=batch.attention_mask, return_type="logits")
            lg = logits[:, :-1].float()
            target = batch.tokens[:, 1:]
            # logsumexp − target logit: no [b, p, vocab] log-softmax copy (vocab can be 50k–260k)
            nll = (torch.logsumexp(lg, dim=-1) - lg.gather(-1, target.unsqueeze(-1)).squeeze(-1)).double()
            del lg, logits
            real = (batch.attention_mask[:, :-1].bool() & batch.attention_mask[:, 1:].bool())
            if not torch.isfinite(nll[real]).all():
                raise FloatingPointError("non-finite next-token loss: the (ablated) model produced NaN/inf logits")
            total += float(nll[real].sum())
            count += int(real.sum())
            per = (nll * real).sum(1) / real.sum(1).clamp(min=1)
            for i, v, n in zip(index, per.tolist(), real.sum(1).tolist(), strict=True):
                per_prompt[i] = float(v) if int(n) else float("nan")
                targets[i] = int(n)
    if count == 0:
        raise ValueError("no target tokens: every prompt is a single token")
    return LossResult(total / count, count, per_prompt, targets)


#: A block ablation, hashable so that its loss can be cached: ``("skip", (i, j, …))`` (:func:`skip_block_hooks`)
#: or ``("remove_skip", i, parallel)`` (:func:`remove_skip_hooks`); None is the intact model.
Ablation = tuple[Any, ...] | None


def ablation_hooks(ablation: Ablation) -> list[Hook]:
    """The forward hooks of ``ablation`` (see :data:`Ablation`); raises ValueError for an unknown kind."""
    if ablation is None:
        return []
    kind = ablation[0]
    if kind == "skip":
        return skip_block_hooks(ablation[1])
    if kind == "remove_skip":
        return remove_skip_hooks(ablation[1], parallel=ablation[2])
    raise ValueError(f"unknown ablation {ablation!r}: expected ('skip', layers) or ('remove_skip', layer, parallel)")


def session_loss(ctx: Any, texts: Sequence[str], ablation: Ablation = None, *, rows: Sequence[Sequence[int]],
                 **kw: Any) -> LossResult:
    """:func:`next_token_loss` of ``texts`` under ``ablation`` on ``ctx``'s model, computed once per session.

    Cached with the session's per-target model checks (:meth:`lmfacts.session.LmfactsSession.model_check`,
    freed with the target's model) under (``texts``, ``kw``, ``ablation``) and the claim's processing, so
    claims that ask for the same loss (RS-3 and RS-4 both need the intact loss, skipping block 0 and
    skipping block L−1 on the same prompts) share one forward pass per batch; the numbers are those of
    a fresh call. ``rows``: the texts' token ids (:func:`tokenize_texts`); ``kw``: the other keyword
    arguments of :func:`next_token_loss`. Raises as :func:`next_token_loss` and :func:`ablation_hooks`.
    """
    key = ("next-token-loss", tuple(texts), tuple(sorted((k, str(v)) for k, v in kw.items())), ablation)
    processing = ctx.spec.processing if ctx.spec else "raw"
    return ctx.session.model_check(key, ctx.target, processing, lambda lm: next_token_loss(
        lm.bridge, texts, fwd_hooks=ablation_hooks(ablation), rows=rows, **kw))


def loss_delta_ci(base: LossResult, ablated: Sequence[LossResult], combine: Callable[..., np.ndarray], *,
                  n_resamples: int = 2000, seed: int = 0) -> Any:
    """Bootstrap CI over prompts of ``combine(Δ_1, …, Δ_k)``, Δ_j = ablated[j].loss − base.loss.

    Each Δ_j is token-weighted (Σ n_i·(ablated_i − base_i) / Σ n_i over the resampled prompts, n_i
    their target tokens), so on the full sample it equals the difference of the ``loss`` values.
    ``combine`` maps ``k`` arrays of shape ``(B,)`` to ``(B,)``. Prompts without a target token are
    dropped. Returns :class:`lmfacts.stats.verdict.BootstrapCI`; raises ``ValueError`` when the
    results are not over the same prompts, :class:`~lmfacts.stats.DegenerateSample` with < 2 prompts.
    """
    from lmfacts.stats.verdict import bootstrap_ci

    n = np.asarray(base.per_prompt_targets, dtype=np.float64)
    for r in ablated:
        if r.per_prompt_targets != base.per_prompt_targets:
            raise ValueError("loss_delta_ci: the ablated and base losses are not over the same prompts/targets")
    keep = n > 0
    rows = [n[keep], np.asarray(base.per_prompt, dtype=np.float64)[keep]]
    rows += [np.asarray(r.per_prompt, dtype=np.float64)[keep] for r in ablated]

    def stat(w: np.ndarray, b: np.ndarray, *abl: np.ndarray) -> np.ndarray:
        total = w.sum(axis=1)
        return np.asarray(combine(*(((a - b) * w).sum(axis=1) / total for a in abl)), dtype=np.float64)

    return bootstrap_ci(rows, stat, n_resamples=n_resamples, seed=seed)
