"""Run the model once per batch with hooks that reduce activations on the fly.

Points: the residual stream is read at ``resid_pre`` of every block plus the final ``resid_post``
(``n_layers + 1`` points, index ``l`` = the stream entering block ``l``). Sublayer outputs
(``attn_out``, ``mlp_out``) and ``resid_mid`` are read per block. The forward stops before the
final norm and unembedding (the probe needs no logits).

Positions are classed by :mod:`lmfacts.probe.batching` (pad, bos, content, bos_mid, special).
"Content" statistics see only ``content``; the BOS statistics (``bos_first``, ``bos_max_rel_dev``
and the ``bos`` norm class) see only the prepended BOS, never a BOS id that came from the text
(``bos_mid``); norms are summed per class, and :attr:`ProbeResult.position_counts` counts them.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lmfacts.probe.accumulators import NormSums, PointStats, per_token_kurtosis, update_sample
from lmfacts.probe.batching import BOS, CLASS_NAMES, Batch, class_counts, make_batch

TOPK_DIMS = 8  # how many largest-|x| dimensions of each token are counted (BF-2)
SAMPLE_TOKENS = 512  # content token vectors kept per point for distribution shape (BF-1)
ROTATION_SEED = 1234


class NonFiniteActivationError(FloatingPointError):
    """The model produced NaN or inf activations."""


@dataclass(frozen=True)
class ProbePlan:
    """Which accumulators to run (all by default; the benchmark turns parts off to cost them)."""

    distributions: bool = True  # moments, per-token kurtosis, extremes, top-k dims, sample
    covariance: bool = True
    rotated: bool = True
    # At most this many content tokens per batch (a uniform random subset, the same one at every
    # point) feed the moment / kurtosis / covariance / top-k / sample accumulators; None = every
    # token. Norms, the RN-4 bound and the per-dimension extremes always see every token.
    sample_tokens: int | None = None


@dataclass
class ProbeResult:
    """Corpus-level reductions of one probe run. Arrays are float64 numpy."""

    n_layers: int
    d_model: int
    n_prompts: int
    n_content_tokens: int
    has_resid_mid: bool
    resid: NormSums
    resid_mid: NormSums
    attn_out: NormSums
    mlp_out: NormSums
    points: list[PointStats]
    rotation: np.ndarray
    mlp_pos_count: np.ndarray
    mlp_count: np.ndarray
    bound_min_slack: np.ndarray  # RN-4: min over tokens of (‖attn‖+‖mlp‖ − (‖post‖−‖pre‖)) / ‖pre‖, per block
    bound_violations: np.ndarray  # per block, tokens where the slack is below −1e-4·‖pre‖
    bound_checked: np.ndarray
    bos_first: list[np.ndarray | None]
    bos_max_rel_dev: np.ndarray  # per point, max over prompts of ‖bos − bos₀‖/‖bos₀‖
    truncated_prompts: list[str] = field(default_factory=list)
    # positions of each class over the whole run: content, bos (prepended), bos_mid (the BOS id
    # from the text), special (other special tokens), pad; content == n_content_tokens
    position_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASS_NAMES, 0))
    seconds: float = 0.0
    plan: ProbePlan = field(default_factory=lambda: ProbePlan())

    def mlp_active_share(self) -> np.ndarray:
        """Share of MLP pre-activations > 0 per block over content tokens (RN-7)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.mlp_pos_count / self.mlp_count

    def covariance(self, point: int) -> np.ndarray:
        """Covariance (d×d) of content token vectors at ``point``."""
        st = self.points[point]
        m = st.moments.mean()
        return st.cov_sum / st.n_tokens - np.outer(m, m)

    def token_kurtosis(self, point: int, rotated: bool = False) -> float:
        """Mean over content tokens of the per-token kurtosis across dimensions (RS convention)."""
        st = self.points[point]
        s = st.rotated_token_kurtosis_sum if rotated else st.token_kurtosis_sum
        return s / st.n_tokens


def random_rotation(d: int, seed: int = ROTATION_SEED) -> torch.Tensor:
    """A fixed random orthogonal d×d matrix (QR of a Gaussian matrix, signs fixed so it is Haar)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


class _Probe:
    """Holds the accumulators and the hook functions of one probe run."""

    def __init__(self, n_layers: int, d: int, plan: ProbePlan, device: torch.device, names: set[str]):
        self.L, self.d, self.plan = n_layers, d, plan
        self.resid = NormSums(n_layers + 1)
        self.resid_mid = NormSums(n_layers)
        self.attn_out = NormSums(n_layers)
        self.mlp_out = NormSums(n_layers)
        self.points = [PointStats(d) for _ in range(n_layers + 1)]
        self.rotation64 = random_rotation(d)
        self.rotation = self.rotation64.float().to(device)
        self.mlp_pos = np.zeros(n_layers)
        self.mlp_n = np.zeros(n_layers)
        self.min_slack = np.full(n_layers, np.inf)
        self.violations = np.zeros(n_layers)
        self.checked = np.zeros(n_layers)
        self.bos_first: list[np.ndarray | None] = [None] * (n_layers + 1)
        self.bos_dev = np.zeros(n_layers + 1)
        self.has_mid = all(f"blocks.{i}.hook_resid_mid" in names for i in range(n_layers))
        self.batch: Batch | None = None
        self.subset: torch.Tensor | None = None
        self.gen = torch.Generator().manual_seed(ROTATION_SEED + 1)
        self._tok_norms: dict[tuple[str, int], torch.Tensor] = {}

    # -- per batch -------------------------------------------------------------------------
    def start(self, batch: Batch) -> None:
        self.batch = batch
        self.subset = None
        n = int(batch.content.sum())
        if self.plan.sample_tokens is not None and n > self.plan.sample_tokens:
            self.subset = torch.randperm(n, generator=self.gen)[: self.plan.sample_tokens].sort().values
        for sums in (self.resid, self.resid_mid, self.attn_out, self.mlp_out):
            sums.start_batch(batch.tokens.shape[0])

    def end(self) -> None:
        for sums in (self.resid, self.resid_mid, self.attn_out, self.mlp_out):
            sums.end_batch()
        self._tok_norms.clear()

    # -- hooks -----------------------------------------------------------------------------
    def _norms(self, x: torch.Tensor, name: str) -> torch.Tensor:
        norms = x.detach().float().norm(dim=-1)
        assert self.batch is not None
        if not torch.isfinite(norms[self.batch.attention_mask.bool()]).all():
            raise NonFiniteActivationError(
                f"non-finite activation at {name}: the model produced NaN/inf on a real token "
                "(try --dtype float32, or check the weights)")
        return norms

    def on_resid(self, point: int, x: torch.Tensor, name: str) -> None:
        assert self.batch is not None
        norms = self._norms(x, name)
        self.resid.add(point, norms, self.batch.classes)
        self._tok_norms[("resid", point)] = norms
        self._bos(point, x)
        if self.plan.distributions:
            self._distributions(point, x.detach().float()[self.batch.content])

    def on_sub(self, kind: str, layer: int, x: torch.Tensor, name: str) -> None:
        assert self.batch is not None
        norms = self._norms(x, name)
        getattr(self, kind).add(layer, norms, self.batch.classes)
        self._tok_norms[(kind, layer)] = norms

    def on_post(self, layer: int, x: torch.Tensor, name: str) -> None:
        """resid_post of block ``layer``: the RN-4 bound, and the final point's statistics."""
        if layer == self.L - 1:
            self.on_resid(self.L, x, name)
            post = self._tok_norms[("resid", self.L)]
        else:
            post = self._norms(x, name)
        pre = self._tok_norms.get(("resid", layer))
        attn = self._tok_norms.get(("attn_out", layer))
        mlp = self._tok_norms.get(("mlp_out", layer))
        if pre is None or attn is None or mlp is None:
            return
        assert self.batch is not None
        real = self.batch.attention_mask.bool()
        pre64, slack = pre.double()[real], (attn.double() + mlp.double() - (post.double() - pre.double()))[real]
        rel = slack / pre64.clamp(min=1e-30)
        self.min_slack[layer] = min(self.min_slack[layer], float(rel.min()))
        self.violations[layer] += float((rel < -1e-4).sum())
        self.checked[layer] += float(real.sum())

    def on_mlp_pre(self, layer: int, x: torch.Tensor) -> None:
        assert self.batch is not None
        xc = x.detach()[self.batch.content]
        self.mlp_pos[layer] += float((xc > 0).sum())
        self.mlp_n[layer] += float(xc.numel())

    # -- helpers ---------------------------------------------------------------------------
    def _bos(self, point: int, x: torch.Tensor) -> None:
        assert self.batch is not None
        bos = self.batch.classes == BOS
        if not bos.any():
            return
        vecs = x.detach()[bos].double().cpu().numpy()
        if self.bos_first[point] is None:
            self.bos_first[point] = vecs[0]
        ref = self.bos_first[point]
        dev = np.linalg.norm(vecs - ref, axis=1) / max(np.linalg.norm(ref), 1e-30)
        self.bos_dev[point] = max(self.bos_dev[point], float(dev.max()))

    def _distributions(self, point: int, xc: torch.Tensor) -> None:
        st = self.points[point]
        if xc.shape[0] == 0:
            return
        lo, hi = torch.aminmax(xc, dim=0)  # extremes over every content token
        if self.subset is not None:
            xc = xc[self.subset.to(xc.device)]
        st.moments.add(xc)
        st.token_kurtosis_sum += float(per_token_kurtosis(xc).double().sum())
        st.n_tokens += xc.shape[0]
        ax = xc.abs()
        ext = torch.stack([hi, lo, ax.sum(0)]).double().cpu().numpy()
        st.max_signed = np.maximum(st.max_signed, ext[0])
        st.min_signed = np.minimum(st.min_signed, ext[1])
        st.abs_sum += ext[2]
        k = min(TOPK_DIMS, self.d)
        top = torch.topk(ax, k, dim=-1).indices.reshape(-1)
        st.topk_counts += torch.bincount(top, minlength=self.d).double().cpu().numpy()
        keys = torch.rand(xc.shape[0], generator=self.gen)
        update_sample(st, xc, keys, SAMPLE_TOKENS)
        if self.plan.covariance:
            st.cov_sum += (xc.T @ xc).double().cpu().numpy()
        if self.plan.rotated:
            xr = xc @ self.rotation
            st.rotated_moments.add(xr)
            st.rotated_token_kurtosis_sum += float(per_token_kurtosis(xr).double().sum())


def _hooks(probe: _Probe, n_layers: int) -> list[tuple[str, object]]:
    hooks: list[tuple[str, object]] = []
    for i in range(n_layers):
        hooks.append((f"blocks.{i}.hook_resid_pre", lambda x, hook, i=i: probe.on_resid(i, x, hook.name)))
        hooks.append((f"blocks.{i}.hook_attn_out",
                      lambda x, hook, i=i: probe.on_sub("attn_out", i, x, hook.name)))
        if probe.has_mid:
            hooks.append((f"blocks.{i}.hook_resid_mid",
                          lambda x, hook, i=i: probe.on_sub("resid_mid", i, x, hook.name)))
        hooks.append((f"blocks.{i}.hook_mlp_out", lambda x, hook, i=i: probe.on_sub("mlp_out", i, x, hook.name)))
        hooks.append((f"blocks.{i}.mlp.hook_pre", lambda x, hook, i=i: probe.on_mlp_pre(i, x)))
        hooks.append((f"blocks.{i}.hook_resid_post", lambda x, hook, i=i: probe.on_post(i, x, hook.name)))
    return hooks


def stop_before_unembed_hook() -> tuple[str, object]:
    """A hook that ends the forward pass at the final norm's input (no logits are computed)."""
    from transformer_lens.model_bridge.exceptions import StopAtLayerException

    def stop(x: torch.Tensor, hook: object) -> None:
        raise StopAtLayerException(x)

    return ("ln_final.hook_in", stop)


def run_probe(bridge, texts: Sequence[str], *, prepend_bos: bool, padding_side: str, pad_id: int,
              n_ctx: int, device: str | torch.device = "cpu", batch_size: int = 16,
              plan: ProbePlan = ProbePlan()) -> ProbeResult:
    """Stream ``texts`` through ``bridge`` in batches and return the corpus-level reductions."""
    if not texts:
        raise ValueError("run_probe needs at least one prompt")
    t0 = time.perf_counter()
    cfg = bridge.cfg
    L, d = cfg.n_layers, cfg.d_model
    names = set(bridge.hook_dict)
    probe = _Probe(L, d, plan, torch.device(device), names)
    hooks = _hooks(probe, L)
    if "ln_final.hook_in" in names:
        hooks.append(stop_before_unembed_hook())
    truncated: list[str] = []
    counts = dict.fromkeys(CLASS_NAMES, 0)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            batch = make_batch(bridge, chunk, prepend_bos=prepend_bos, n_ctx=n_ctx, padding_side=padding_side,
                               pad_id=pad_id, device=device)
            truncated += [chunk[i] for i in batch.truncated]
            for name, n in class_counts(batch.classes).items():
                counts[name] += n
            probe.start(batch)
            bridge.run_with_hooks(batch.tokens, fwd_hooks=hooks, attention_mask=batch.attention_mask,
                                  return_type=None)
            probe.end()
    if truncated:
        warnings.warn(f"{len(truncated)} prompt(s) longer than the model's context ({n_ctx} tokens) were "
                      f"truncated, e.g. {truncated[0][:40]!r}…", stacklevel=2)
    return ProbeResult(
        n_layers=L, d_model=d, n_prompts=len(texts), n_content_tokens=counts["content"], has_resid_mid=probe.has_mid,
        resid=probe.resid, resid_mid=probe.resid_mid, attn_out=probe.attn_out, mlp_out=probe.mlp_out,
        points=probe.points, rotation=probe.rotation64.numpy(), mlp_pos_count=probe.mlp_pos,
        mlp_count=probe.mlp_n, bound_min_slack=probe.min_slack, bound_violations=probe.violations,
        bound_checked=probe.checked, bos_first=probe.bos_first, bos_max_rel_dev=probe.bos_dev,
        truncated_prompts=truncated, position_counts=counts, seconds=time.perf_counter() - t0, plan=plan,
    )
