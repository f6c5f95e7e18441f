"""Run the model once per batch with hooks that reduce activations on the fly.

Points: the residual stream is read at ``resid_pre`` of every block plus the final ``resid_post``
(``n_layers + 1`` points, index ``l`` = the stream entering block ``l``). Sublayer outputs
(``attn_out``, ``mlp_out``) and ``resid_mid`` are read per block. The forward stops before the
final norm and unembedding (the probe needs no logits).

Positions are classed by :mod:`lmfacts.probe.batching` (pad, bos, content, bos_mid, special).
"Content" statistics see only ``content``; the BOS statistics (``bos_first``, ``bos_max_rel_dev``
and the ``bos`` norm class) see only the prepended BOS, never a BOS id that came from the text
(``bos_mid``); norms are summed per class, and :attr:`ProbeResult.position_counts` counts them.

Batches: prompts are tokenised once, sorted by length and packed up to ``batch_tokens`` padded
tokens (:func:`lmfacts.probe.batching.plan_batches`); per-prompt results are stored in corpus order
and :attr:`ProbeResult.batching` reports the padding overhead.

Device-resident reductions: every accumulator is a tensor on the model's device; a hook only
writes per-token norms into a per-batch buffer and updates the distribution sums, and the class
sums, per-prompt means, the RN-4 bound and the non-finite check are reduced from that buffer once
per batch (one host sync per batch, for the non-finite check); results reach the host once, at the end.

One pass for both processings (``derive``): TransformerLens compat processing (fold_ln,
center_writing_weights) leaves an RMSNorm model's activations unchanged (``derive="identity"``),
and on a LayerNorm model makes the residual stream, resid_mid, attn_out and mlp_out exactly the raw
ones centred per token, x − mean(x), with ``mlp.hook_pre`` unchanged (``derive="centred"``). With
``derive`` set, the raw pass also reduces the compat view (centring per token inside the hooks) and
returns it as :attr:`ProbeResult.compat`. Whether the identity holds for a loaded model is checked
by :func:`fingerprint` / :func:`fingerprint_error` on one prompt (see :meth:`lmfacts.session.LmfactsSession.probe`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lmfacts.probe.accumulators import (
    SAMPLE_TOKENS,
    CentredPointStats,
    MemoryPlan,
    NormSums,
    NotMeasuredError,
    PointStats,
    budget_bytes,
    per_token_kurtosis,
    plan_memory,
)
from lmfacts.probe.batching import (
    BOS,
    CLASS_NAMES,
    CONTENT,
    PAD,
    Batch,
    pad_rows,
    padding_stats,
    plan_batches,
    tokenize_one,
)

TOPK_DIMS = 8  # how many largest-|x| dimensions of each token are counted (BF-2)
ROTATION_SEED = 1234
SAMPLE_SEED = ROTATION_SEED + 1
DEFAULT_BATCH_TOKENS = 4096  # padded tokens per forward pass (--batch-tokens)
DERIVATIONS = ("identity", "centred")


class NonFiniteActivationError(FloatingPointError):
    """The model produced NaN or inf activations."""


class CovarianceNotKept(NotMeasuredError, KeyError):  # noqa: N818 - reads as what it reports
    """The memory plan kept no covariance at this point (``--probe-memory``)."""


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
    points: list[Any]  # PointStats (CentredPointStats in a derived compat view)
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
    # which weights the statistics describe, and how: derivation None = this pass ran on them;
    # "identity" / "centred" = derived from the raw pass (see the module docstring)
    processing: str = "raw"
    derivation: str | None = None
    batching: dict[str, Any] = field(default_factory=dict)  # real / padded tokens, overhead, batches
    memory: dict[str, Any] = field(default_factory=dict)  # the MemoryPlan and the measured accumulator bytes
    compat: ProbeResult | None = None  # the derived compat view (run_probe(derive=...))

    def mlp_active_share(self) -> np.ndarray:
        """Share of MLP pre-activations > 0 per block over content tokens (RN-7)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.mlp_pos_count / self.mlp_count

    def has_covariance(self, point: int) -> bool:
        """Whether the memory plan kept the covariance at ``point``."""
        return getattr(self.points[point], "cov_sum", None) is not None

    def covariance(self, point: int) -> np.ndarray:
        """Covariance (d×d, float64) of content token vectors at ``point``.

        Raises :class:`CovarianceNotKept` where ``--probe-memory`` kept none (``memory['covariance']``).
        """
        st = self.points[point]
        if not self.has_covariance(point):
            raise CovarianceNotKept(f"no covariance at point {point}: the probe's memory plan "
                                    f"({self.memory.get('covariance')}) kept it at points "
                                    f"{self.memory.get('covariance_points')} only (raise --probe-memory)")
        m = st.moments.s1 / st.n_tokens  # mean of x − shift, the frame cov_sum is summed in
        return np.asarray(st.cov_sum, dtype=np.float64) / st.n_tokens - np.outer(m, m)

    def token_kurtosis(self, point: int, rotated: bool = False) -> float:
        """Mean over content tokens of the per-token kurtosis across dimensions (RS convention), over the tokens
        where it is defined (:meth:`token_kurtosis_undefined` counts the others: a vector constant across its
        dimensions, e.g. an all-zero embedding row, has kurtosis 0/0); NaN when no content token has one (a NaN
        measurement is an error, never a verdict)."""
        st = self.points[point]
        s = st.rotated_token_kurtosis_sum if rotated else st.token_kurtosis_sum
        n = st.n_tokens - self.token_kurtosis_undefined(point, rotated)
        return s / n if n > 0 else float("nan")

    def token_kurtosis_undefined(self, point: int, rotated: bool = False) -> int:
        """Content tokens at ``point`` whose vector is constant across its dimensions (zero variance: Pearson
        kurtosis 0/0), left out of :meth:`token_kurtosis`; a random rotation turns a constant non-zero vector into a
        non-constant one, so the rotated count can be smaller."""
        st = self.points[point]
        return int(st.rotated_token_kurtosis_undefined if rotated else st.token_kurtosis_undefined)


@functools.lru_cache(maxsize=4)
def _rotation(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def random_rotation(d: int, seed: int = ROTATION_SEED) -> torch.Tensor:
    """A fixed random orthogonal d×d matrix (QR of a Gaussian matrix, signs fixed so it is Haar), float64.

    Computed once per (d, seed) in a process; a fresh copy is returned.
    """
    return _rotation(d, seed).clone()


def prompt_keys(index: int, n: int) -> torch.Tensor:
    """The sampling keys of the ``n`` positions of corpus prompt ``index`` (uniform in [0, 1), float32).

    Fixed by the prompt's corpus index alone, so the probe's token sample does not depend on how
    the corpus is batched.
    """
    return torch.rand(n, generator=torch.Generator().manual_seed(SAMPLE_SEED * 1_000_003 + index))


class _PointAcc:
    """Device-resident distribution accumulators of one residual point."""

    def __init__(self, d: int, device: torch.device, cov_dtype: torch.dtype | None):
        z = lambda: torch.zeros(d, dtype=torch.float64, device=device)  # noqa: E731
        self.d, self.device = d, device
        self.n = 0
        self.shift: torch.Tensor | None = None
        self.s = [z() for _ in range(4)]
        self.rshift: torch.Tensor | None = None
        self.rs = [z() for _ in range(4)]
        self.tk = torch.zeros((), dtype=torch.float64, device=device)
        self.rtk = torch.zeros((), dtype=torch.float64, device=device)
        self.tk_undefined = torch.zeros((), dtype=torch.int64, device=device)  # tokens whose kurtosis is 0/0
        self.rtk_undefined = torch.zeros((), dtype=torch.int64, device=device)
        self.hi = torch.full((d,), -torch.inf, dtype=torch.float64, device=device)
        self.lo = torch.full((d,), torch.inf, dtype=torch.float64, device=device)
        self.topk = z()
        self.abs = z()
        self.cov = None if cov_dtype is None else torch.zeros(d, d, dtype=cov_dtype, device=device)
        self.sample: torch.Tensor | None = None
        self.sample_keys: torch.Tensor | None = None


def _add_token_kurtosis(total: torch.Tensor, undefined: torch.Tensor, x: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(total + Σ kurtosis, undefined + count)`` over the rows of ``x`` ``[n, d]`` (:func:`per_token_kurtosis`),
    the rows whose kurtosis is not finite (a row constant across its dimensions: 0/0; NaN/inf activations raise
    NonFiniteActivationError at the batch's end instead) counted, not summed; both stay on the device."""
    k = per_token_kurtosis(x)
    bad = ~torch.isfinite(k)
    return total + k.masked_fill(bad, 0.0).double().sum(), undefined + bad.sum()


def _moments(sums: list[torch.Tensor], y: torch.Tensor, s2: torch.Tensor | None = None) -> None:
    """Add Σy, Σy², Σy³, Σy⁴ over rows of y [n, d] (float32 sums, float64 totals).

    ``s2``: Σy² when the caller has it already (the diagonal of the covariance GEMM yᵀy).
    """
    y2 = y * y
    sums[0] += y.sum(0).double()
    sums[1] += (y2.sum(0) if s2 is None else s2).double()
    sums[2] += (y2 * y).sum(0).double()
    sums[3] += torch.linalg.vector_norm(y2, dim=0).square().double()  # Σy⁴ = ‖y²‖², no temporary


class _Probe:
    """Holds the accumulators and the hook functions of one probe run."""

    def __init__(self, n_layers: int, d: int, plan: ProbePlan, device: torch.device, names: set[str],
                 n_prompts: int, derive: str | None, memory: MemoryPlan):
        self.L, self.d, self.plan, self.device = n_layers, d, plan, device
        self.derive = derive
        self.memory = memory
        self.has_mid = all(f"blocks.{i}.hook_resid_mid" in names for i in range(n_layers))
        L = n_layers
        # rows of the per-batch norm buffer: resid_pre, resid_post, attn_out, mlp_out (, resid_mid) per block
        self.PRE, self.POST, self.ATTN, self.MLP, self.MID = 0, L, 2 * L, 3 * L, 4 * L
        self.K = 5 * L if self.has_mid else 4 * L
        self.views = ["raw"] + (["centred"] if derive == "centred" else [])
        f64 = dict(dtype=torch.float64, device=device)
        self.sums = {v: torch.zeros(self.K, len(CLASS_NAMES), **f64) for v in self.views}
        self.counts = torch.zeros(self.K, len(CLASS_NAMES), **f64)
        self.per_prompt = {v: torch.full((self.K, n_prompts), float("nan"), **f64) for v in self.views}
        self.min_slack = {v: torch.full((L,), float("inf"), **f64) for v in self.views}
        self.violations = {v: torch.zeros(L, **f64) for v in self.views}
        self.checked = np.zeros(L)
        self.bos_first: dict[str, list[torch.Tensor | None]] = {v: [None] * (L + 1) for v in self.views}
        self.bos_dev = {v: torch.zeros(L + 1, **f64) for v in self.views}
        self.mlp_pos = torch.zeros(L, **f64)
        self.mlp_n = np.zeros(L)
        self.d_mlp: dict[int, int] = {}
        cov_dtype = None if not plan.covariance else (torch.float64 if memory.covariance == "float64" else torch.float32)
        kept = set(memory.cov_points)
        self.points = [_PointAcc(d, device, cov_dtype if p in kept else None) for p in range(L + 1)]
        self.rotation64 = random_rotation(d)
        self.rotation = self.rotation64.float().to(device)
        self.gen = torch.Generator().manual_seed(SAMPLE_SEED)
        self.res_keys: torch.Tensor | None = None  # the reservoir's keys (the same at every point), on the host
        self.ones = torch.ones(0, dtype=torch.float64, device=device)
        self.n_content = 0
        self.batch: Batch | None = None
        self.buf: dict[str, torch.Tensor] = {}
        self.mlp_buf: torch.Tensor | None = None
        self.fired: list[int] = []
        self.mlp_fired: list[int] = []

    # -- per batch -------------------------------------------------------------------------
    def start(self, batch: Batch, index: Sequence[int], classes_cpu: torch.Tensor) -> None:
        """Open a batch: ``index`` are the corpus indices of its rows; ``classes_cpu`` its class map on the host."""
        self.batch, self.index = batch, torch.as_tensor(list(index), device=self.device)
        b, p = classes_cpu.shape
        content_cpu = classes_cpu == CONTENT
        n = int(content_cpu.sum())
        self.n_batch_content = n
        self.class_n = [int((classes_cpu == c).sum()) for c in CLASS_NAMES.values()]
        self.n_real = int((classes_cpu != 0).sum())
        self.content = batch.classes == CONTENT
        self.real = batch.attention_mask.bool()
        self.row_content = content_cpu.sum(1).to(self.device, torch.float64)
        self.has_bos = bool((classes_cpu == BOS).any())
        self.bos_mask = batch.classes == BOS
        keys = torch.zeros(b, p)
        real_cpu = classes_cpu != PAD
        for r, i in enumerate(index):
            keys[r, real_cpu[r]] = prompt_keys(int(i), int(real_cpu[r].sum()))
        ckeys = keys[content_cpu]
        self.subset = None
        if self.plan.sample_tokens is not None and n > self.plan.sample_tokens:
            self.subset = torch.randperm(n, generator=self.gen)[: self.plan.sample_tokens].sort().values
            ckeys = ckeys[self.subset]
            self.subset = self.subset.to(self.device)
        self.content_idx = torch.nonzero(content_cpu.flatten()).flatten().to(self.device)
        self.bos_idx = torch.nonzero((classes_cpu == BOS).flatten()).flatten().to(self.device)
        if self.ones.numel() < n * TOPK_DIMS:
            self.ones = torch.ones(n * TOPK_DIMS, dtype=torch.float64, device=self.device)
        if self.plan.distributions and n:
            self._select_sample(ckeys)
        self.buf = {v: torch.empty(self.K, b, p, dtype=torch.float32, device=self.device) for v in self.views}
        self.mlp_buf = torch.empty(self.L, b, p, dtype=torch.float32, device=self.device)
        self.fired, self.mlp_fired = [], []

    def end(self, names: list[str]) -> None:
        """Reduce the batch's buffers into the accumulators (one host sync: the non-finite check)."""
        assert self.batch is not None
        rows = self.fired
        if not rows:
            return
        idx = torch.as_tensor(rows, device=self.device)
        classes = self.batch.classes
        bad_any = None
        for v in self.views:
            B = self.buf[v].index_select(0, idx).double()  # [k, b, p]
            bad = (~torch.isfinite(B) & self.real).flatten(1).any(1)
            bad_any = bad if bad_any is None else bad | bad_any
            sums = torch.stack([torch.where(classes == c, B, 0.0).sum((1, 2)) for c in CLASS_NAMES.values()], 1)
            self.sums[v].index_add_(0, idx, sums)
            per = torch.where(self.content, B, 0.0).sum(-1) / self.row_content.clamp(min=1)
            per = torch.where(self.row_content > 0, per, float("nan"))
            self.per_prompt[v][idx.unsqueeze(1), self.index.unsqueeze(0)] = per
            self._bound(v)
        self.counts.index_add_(0, idx, torch.tensor(self.class_n, dtype=torch.float64, device=self.device)
                               .expand(len(rows), -1))
        for layer in self.mlp_fired:
            assert self.mlp_buf is not None
            self.mlp_pos[layer] += torch.where(self.content, self.mlp_buf[layer], 0.0).sum().double()
            self.mlp_n[layer] += self.n_batch_content * self.d_mlp[layer]
        if bool(bad_any.any()):  # the one host sync of the batch
            bad_rows = {rows[k] for k in torch.nonzero(bad_any).flatten().tolist()}
            first = next(r for r in rows if r in bad_rows)
            raise NonFiniteActivationError(
                f"non-finite activation at {names[first]}: the model produced NaN/inf on a real token "
                "(try --dtype float32, or check the weights)")
        self.buf = {}
        self.mlp_buf = None

    def _bound(self, view: str) -> None:
        """RN-4 per block from the batch's norm rows: slack = ‖attn‖ + ‖mlp‖ − (‖post‖ − ‖pre‖), over real tokens."""
        fired = set(self.fired)
        L = self.L
        blocks = [i for i in range(L) if {self.PRE + i, self.POST + i, self.ATTN + i, self.MLP + i} <= fired]
        if not blocks:
            return
        B = self.buf[view]
        bi = torch.as_tensor(blocks, device=self.device)
        pre, post = B[self.PRE + bi].double(), B[self.POST + bi].double()
        slack = B[self.ATTN + bi].double() + B[self.MLP + bi].double() - (post - pre)
        rel = slack / pre.clamp(min=1e-30)
        real = self.real
        self.min_slack[view][bi] = torch.minimum(self.min_slack[view][bi],
                                                 torch.where(real, rel, float("inf")).amin((1, 2)))
        self.violations[view][bi] += ((rel < -1e-4) & real).sum((1, 2)).double()
        if view == "raw":
            self.checked[blocks] += self.n_real

    # -- hooks -----------------------------------------------------------------------------
    def _row(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Write ‖x‖ (and ‖x − mean x‖ for the centred view) per token into row ``k``; returns x in float32."""
        xf = x if x.dtype == torch.float32 else x.float()
        n = torch.linalg.vector_norm(xf, dim=-1)
        self.buf["raw"][k].copy_(n)
        if "centred" in self.buf:
            self.buf["centred"][k].copy_(torch.linalg.vector_norm(xf - xf.mean(-1, keepdim=True), dim=-1))
        self.fired.append(k)
        return xf

    def on_resid(self, point: int, x: torch.Tensor) -> None:
        xf = self._row(self.PRE + point, x)
        self._point(point, xf)

    def on_sub(self, row: int, x: torch.Tensor) -> None:
        self._row(row, x)

    def on_post(self, layer: int, x: torch.Tensor) -> None:
        """resid_post of block ``layer``: a norm row (the RN-4 bound); the final point's statistics."""
        xf = self._row(self.POST + layer, x)
        if layer == self.L - 1:
            self._point(self.L, xf)

    def on_mlp_pre(self, layer: int, x: torch.Tensor) -> None:
        assert self.mlp_buf is not None
        self.d_mlp[layer] = int(x.shape[-1])
        self.mlp_buf[layer].copy_((x > 0).sum(-1))
        self.mlp_fired.append(layer)

    # -- helpers ---------------------------------------------------------------------------
    def _point(self, point: int, xf: torch.Tensor) -> None:
        if self.has_bos:
            self._bos(point, xf)
        if self.plan.distributions:
            self._distributions(point, xf.reshape(-1, xf.shape[-1]).index_select(0, self.content_idx))

    def _select_sample(self, keys: torch.Tensor) -> None:
        """Which of this batch's (sampled) content tokens enter the reservoir, and which old rows stay.

        Every point sees the same tokens with the same keys, so the selection is made once per batch:
        ``self.keep_old`` (rows of the reservoir) and ``self.take_new`` (rows of the batch's content).
        """
        old = self.res_keys  # host tensors: the selection is made before the forward pass, no device sync
        pool = keys if old is None else torch.cat([old, keys])
        if pool.numel() > SAMPLE_TOKENS:
            idx = torch.topk(pool, SAMPLE_TOKENS, largest=False).indices.sort().values
        else:
            idx = torch.arange(pool.numel())
        n_old = 0 if old is None else old.numel()
        self.keep_old = idx[idx < n_old].to(self.device)
        self.take_new = (idx[idx >= n_old] - n_old).to(self.device)
        self.res_keys = pool[idx]
        self.res_keys_dev = self.res_keys.to(self.device)

    def _sample(self, st: _PointAcc, xc: torch.Tensor) -> None:
        new = xc.index_select(0, self.take_new)
        st.sample = new if st.sample is None else torch.cat([st.sample.index_select(0, self.keep_old), new])
        st.sample_keys = self.res_keys_dev

    def _bos(self, point: int, xf: torch.Tensor) -> None:
        vecs = xf.reshape(-1, xf.shape[-1]).index_select(0, self.bos_idx).double()
        for v in self.views:
            if v == "centred":
                vecs = vecs - vecs.mean(-1, keepdim=True)
            if self.bos_first[v][point] is None:
                self.bos_first[v][point] = vecs[0].clone()
            ref = self.bos_first[v][point]
            dev = torch.linalg.vector_norm(vecs - ref, dim=-1) / torch.linalg.vector_norm(ref).clamp(min=1e-30)
            self.bos_dev[v][point] = torch.maximum(self.bos_dev[v][point], dev.max())

    def _distributions(self, point: int, xc: torch.Tensor) -> None:
        st = self.points[point]
        if xc.shape[0] == 0:
            return
        lo, hi = torch.aminmax(xc, dim=0)  # extremes over every content token
        st.hi = torch.maximum(st.hi, hi.double())
        st.lo = torch.minimum(st.lo, lo.double())
        if self.subset is not None:
            xc = xc[self.subset]
        if st.shift is None:
            st.shift = xc.mean(0)
        y = xc - st.shift
        diag = None
        if st.cov is not None:
            c = y.T @ y
            diag = torch.diagonal(c)
            st.cov += c if st.cov.dtype == torch.float32 else c.double()
        _moments(st.s, y, diag)
        st.tk, st.tk_undefined = _add_token_kurtosis(st.tk, st.tk_undefined, xc)
        st.n += xc.shape[0]
        ax = xc.abs()
        st.abs += ax.sum(0).double()
        k = min(TOPK_DIMS, self.d)
        top = torch.topk(ax, k, dim=-1, sorted=False).indices.reshape(-1)
        st.topk.index_add_(0, top, self.ones[: top.numel()])  # a bincount without a host sync
        self._sample(st, xc)
        if self.plan.rotated:
            xr = xc @ self.rotation
            if st.rshift is None:
                st.rshift = xr.mean(0)
            _moments(st.rs, xr - st.rshift)
            st.rtk, st.rtk_undefined = _add_token_kurtosis(st.rtk, st.rtk_undefined, xr)

    # -- results -----------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Everything on the host (one copy per accumulator), per view."""
        L = self.L
        counts = self.counts.cpu().numpy()
        resid_rows = list(range(self.PRE, self.PRE + L)) + [self.POST + L - 1]
        out: dict[str, Any] = {}
        for v in self.views:
            sums, per = self.sums[v].cpu().numpy(), self.per_prompt[v].cpu().numpy()

            def norm_sums(rows: list[int], sums: np.ndarray = sums, per: np.ndarray = per) -> NormSums:
                return NormSums.from_tables(sums[rows], counts[rows], per[rows].T.copy())

            mid = norm_sums(list(range(self.MID, self.MID + L))) if self.has_mid else NormSums(L)
            out[v] = dict(
                resid=norm_sums(resid_rows), resid_mid=mid, attn_out=norm_sums(list(range(self.ATTN, self.ATTN + L))),
                mlp_out=norm_sums(list(range(self.MLP, self.MLP + L))),
                bound_min_slack=self.min_slack[v].cpu().numpy(), bound_violations=self.violations[v].cpu().numpy(),
                bound_checked=self.checked.copy(),
                bos_first=[None if b is None else b.cpu().numpy() for b in self.bos_first[v]],
                bos_max_rel_dev=self.bos_dev[v].cpu().numpy())
        points: list[PointStats] = []
        for acc in self.points:
            st = PointStats(self.d)
            st.n_tokens = float(acc.n)
            for mom, sums, shift in ((st.moments, acc.s, acc.shift), (st.rotated_moments, acc.rs, acc.rshift)):
                mom.n = float(acc.n)
                mom.shift = None if shift is None else shift.double().cpu().numpy()
                mom.s1, mom.s2, mom.s3, mom.s4 = (s.cpu().numpy() for s in sums)
            st.token_kurtosis_sum, st.rotated_token_kurtosis_sum = float(acc.tk), float(acc.rtk)
            st.token_kurtosis_undefined = int(acc.tk_undefined)
            st.rotated_token_kurtosis_undefined = int(acc.rtk_undefined)
            st.cov_sum = None if acc.cov is None else acc.cov.cpu().numpy()
            st.max_signed, st.min_signed = acc.hi.cpu().numpy(), acc.lo.cpu().numpy()
            st.topk_counts, st.abs_sum = acc.topk.cpu().numpy(), acc.abs.cpu().numpy()
            if acc.sample is not None:
                order = torch.argsort(acc.sample_keys)  # a canonical order: by key
                st.sample, st.sample_keys = acc.sample[order].cpu(), acc.sample_keys[order].cpu()
            points.append(st)
        out["points"] = points
        out["mlp_pos"] = self.mlp_pos.cpu().numpy()
        out["mlp_n"] = self.mlp_n.copy()
        return out


def _hooks(probe: _Probe, n_layers: int) -> list[tuple[str, Any]]:
    """The forward hooks of the probe (hook name, function)."""
    hooks: list[tuple[str, Any]] = []
    for i in range(n_layers):
        hooks.append((f"blocks.{i}.hook_resid_pre", lambda x, hook, i=i: probe.on_resid(i, x)))
        hooks.append((f"blocks.{i}.hook_attn_out", lambda x, hook, i=i: probe.on_sub(probe.ATTN + i, x)))
        if probe.has_mid:
            hooks.append((f"blocks.{i}.hook_resid_mid", lambda x, hook, i=i: probe.on_sub(probe.MID + i, x)))
        hooks.append((f"blocks.{i}.hook_mlp_out", lambda x, hook, i=i: probe.on_sub(probe.MLP + i, x)))
        hooks.append((f"blocks.{i}.mlp.hook_pre", lambda x, hook, i=i: probe.on_mlp_pre(i, x)))
        hooks.append((f"blocks.{i}.hook_resid_post", lambda x, hook, i=i: probe.on_post(i, x)))
    return hooks


def _row_names(probe: _Probe, n_layers: int) -> list[str]:
    """The hook name of every norm row (for error messages)."""
    names = [""] * probe.K
    for i in range(n_layers):
        names[probe.PRE + i] = f"blocks.{i}.hook_resid_pre"
        names[probe.POST + i] = f"blocks.{i}.hook_resid_post"
        names[probe.ATTN + i] = f"blocks.{i}.hook_attn_out"
        names[probe.MLP + i] = f"blocks.{i}.hook_mlp_out"
        if probe.has_mid:
            names[probe.MID + i] = f"blocks.{i}.hook_resid_mid"
    return names


def stop_before_unembed_hook(at: str = "ln_final.hook_in") -> tuple[str, object]:
    """A hook that ends the forward pass at hook point ``at`` (default the final norm's input; no logits
    are computed either way: ``"unembed.hook_in"`` runs the final norm and stops before the unembedding)."""
    from transformer_lens.model_bridge.exceptions import StopAtLayerException

    def stop(x: torch.Tensor, hook: object) -> None:
        raise StopAtLayerException(x)

    return (at, stop)


def tokenize_corpus(bridge, texts: Sequence[str], *, prepend_bos: bool, n_ctx: int) -> tuple[list[list[int]], list[int]]:
    """Token ids of every prompt (truncated to ``n_ctx``) and the indices of the truncated ones.

    Raises :class:`lmfacts.probe.batching.PromptError` / ``OutOfVocabularyError`` as :func:`tokenize_one`.
    """
    rows: list[list[int]] = []
    truncated: list[int] = []
    for i, text in enumerate(texts):
        ids, cut = tokenize_one(bridge, text, prepend_bos=prepend_bos, n_ctx=n_ctx)
        rows.append(ids)
        if cut:
            truncated.append(i)
    return rows, truncated


def run_probe(bridge, texts: Sequence[str], *, prepend_bos: bool, padding_side: str, pad_id: int,
              n_ctx: int, device: str | torch.device = "cpu", batch_size: int | None = None,
              batch_tokens: int = DEFAULT_BATCH_TOKENS, plan: ProbePlan = ProbePlan(),
              derive: str | None = None, memory_gb: float | None = None, reductions: Sequence[Any] = (),
              extra_texts: Sequence[str] = (), extra_n_ctx: int | None = None) -> ProbeResult:
    """Stream ``texts`` through ``bridge`` in length-sorted batches and return the corpus-level reductions.

    ``batch_tokens``: padded tokens per forward pass; ``batch_size``: optional cap on prompts per pass.
    ``derive``: also reduce the compat view (``"identity"`` or ``"centred"``, see the module docstring),
    returned as ``result.compat``. ``memory_gb``: the accumulators' budget (``--probe-memory``;
    default :func:`lmfacts.probe.accumulators.default_memory_budget`), see ``result.memory``.

    ``reductions``: further per-batch reductions fed by the same forward passes (the interface of
    :mod:`lmfacts.measures.beyond`: ``hook_names()``, ``start(BatchView)``, ``on(name, x)``, ``end()``);
    their ``BatchView.index`` is the pass index of each row: ``0 … len(texts)−1`` for ``texts``, then
    ``len(texts) …`` for ``extra_texts``, prompts that only the reductions see (batched apart from
    ``texts``, so the probe's own accumulators are exactly those of ``texts``; truncated to ``extra_n_ctx``
    tokens where given, e.g. the positions a causal reduction reads). A reduction that hooks
    ``unembed.hook_in`` (the model's final-norm output) moves the early stop from ``ln_final.hook_in``
    to ``unembed.hook_in``: the final norm runs, the unembedding still does not.
    Raises ValueError for an empty corpus or an unknown ``derive``; PromptError / OutOfVocabularyError
    for a prompt the model cannot take; NonFiniteActivationError for NaN/inf activations on real tokens.
    """
    if not texts:
        raise ValueError("run_probe needs at least one prompt")
    if derive is not None and derive not in DERIVATIONS:
        raise ValueError(f"derive must be one of {DERIVATIONS} or None, not {derive!r}")
    t0 = time.perf_counter()
    cfg = bridge.cfg
    L, d = cfg.n_layers, cfg.d_model
    names = set(bridge.hook_dict)
    dev = torch.device(device)
    rows, truncated = tokenize_corpus(bridge, texts, prepend_bos=prepend_bos, n_ctx=n_ctx)
    lengths = [len(r) for r in rows]
    cost = 64 if dev.type == "cpu" else 1024  # a GPU pass has more fixed cost
    batches = plan_batches(lengths, batch_tokens=batch_tokens, max_prompts=batch_size, first=0, batch_cost=cost)
    if batches and 0 in batches[0]:  # the corpus' first prompt leads, so bos_first is its BOS
        batches[0].remove(0)
        batches[0].insert(0, 0)
    extra_batches: list[list[int]] = []
    if extra_texts:
        extra_rows, _ = tokenize_corpus(bridge, extra_texts, prepend_bos=prepend_bos,
                                        n_ctx=min(n_ctx, extra_n_ctx or n_ctx))
        extra_batches = [[len(texts) + i for i in b] for b in plan_batches(
            [len(r) for r in extra_rows], batch_tokens=batch_tokens, max_prompts=batch_size, batch_cost=cost)]
        rows = rows + extra_rows
    all_texts = list(texts) + list(extra_texts)
    has_mid = all(f"blocks.{i}.hook_resid_mid" in names for i in range(L))
    mem = plan_memory(L + 1, d, budget_bytes(memory_gb, dev), covariance=plan.covariance and plan.distributions,
                      n_prompts=len(texts), n_norm_rows=(5 if has_mid else 4) * L * (2 if derive == "centred" else 1))
    probe = _Probe(L, d, plan, dev, names, len(texts), derive, mem)
    hooks, row_names = _hooks(probe, L), _row_names(probe, L)
    red_hooks = [(name, (lambda x, hook, r=r, name=name: r.on(name, x))) for r in reductions
                 for name in r.hook_names() if name in names]
    stop_at = "unembed.hook_in" if any(n == "unembed.hook_in" for n, _ in red_hooks) else "ln_final.hook_in"
    stop = [stop_before_unembed_hook(stop_at)] if stop_at in names else []
    hooks = hooks + red_hooks + stop  # the stop hook last: a reduction on the same hook point fires first
    counts = dict.fromkeys(CLASS_NAMES, 0)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    from lmfacts.measures.beyond import BatchView

    with torch.inference_mode():
        for index in batches + extra_batches:
            own = index[0] < len(texts)  # a batch of ``texts`` (never mixed with extra_texts)
            batch = pad_rows(bridge, [rows[i] for i in index], [all_texts[i] for i in index], [],
                             prepend_bos=prepend_bos, padding_side=padding_side, pad_id=pad_id, device="cpu")
            classes_cpu = batch.classes
            if own:
                for name, c in CLASS_NAMES.items():
                    counts[name] += int((classes_cpu == c).sum())
            batch = Batch(batch.tokens.to(dev), batch.attention_mask.to(dev), classes_cpu.to(dev), batch.lengths,
                          batch.texts)
            if own:
                probe.start(batch, index, classes_cpu)
            if reductions:
                view = BatchView(batch.tokens, batch.attention_mask.bool(), batch.classes, list(index))
                for r in reductions:
                    r.start(view)
            bridge.run_with_hooks(batch.tokens, fwd_hooks=hooks if own else red_hooks + stop,
                                  attention_mask=batch.attention_mask, return_type=None)
            if own:
                probe.end(row_names)
            for r in reductions:
                r.end()
    truncated_texts = [texts[i] for i in truncated]
    if truncated:
        warnings.warn(f"{len(truncated)} prompt(s) longer than the model's context ({n_ctx} tokens) were "
                      f"truncated, e.g. {truncated_texts[0][:40]!r}…", stacklevel=2)
    res = probe.finish()
    from lmfacts.heap import return_freed_heap

    return_freed_heap()  # the batches' transients (activations, logits) stay in glibc's arenas otherwise
    acc_bytes = _accumulator_bytes(probe)
    memory = {**mem.to_dict(), "measured_gb": round(acc_bytes / 2**30, 4)}
    if dev.type == "cuda":
        memory["device_peak_gb_above_model"] = round((torch.cuda.max_memory_allocated(dev) - base) / 2**30, 4)
    batching = {**padding_stats(lengths, batches), "batch_tokens": batch_tokens, "max_prompts_per_batch": batch_size,
                "order": "sorted by token length"}
    common = dict(n_layers=L, d_model=d, n_prompts=len(texts), n_content_tokens=counts["content"],
                  has_resid_mid=probe.has_mid, rotation=probe.rotation64.numpy(), mlp_pos_count=res["mlp_pos"],
                  mlp_count=res["mlp_n"], truncated_prompts=truncated_texts, position_counts=counts, plan=plan,
                  batching=batching, memory=memory)
    result = ProbeResult(points=res["points"], **res["raw"], **common)
    if derive == "identity":
        result.compat = dataclasses.replace(result, processing="compat", derivation="identity", compat=None)
    elif derive == "centred":
        cpoints = [CentredPointStats(d, st.n_tokens, None if st.sample is None else st.sample - st.sample.mean(
            -1, keepdim=True), st.sample_keys) for st in res["points"]]
        result.compat = ProbeResult(points=cpoints, **res["centred"], **common, processing="compat",
                                    derivation="centred")
    seconds = time.perf_counter() - t0
    result.seconds = seconds
    if result.compat is not None:
        result.compat.seconds = 0.0
    return result


def derivation_for(bridge) -> str:
    """The derivation of the compat view that TransformerLens' processing implies for ``bridge``.

    ``"centred"`` for LayerNorm models (``cfg.normalization_type`` LN / LNPre: center_writing_weights
    centres every write into the stream), ``"identity"`` otherwise (RMSNorm: folding only). A
    prior only: the session checks it on the loaded model with :func:`fingerprint`.
    """
    norm = str(getattr(bridge.cfg, "normalization_type", None) or "")
    return "centred" if norm.startswith("LN") else "identity"


def _accumulator_bytes(probe: _Probe) -> int:
    """Bytes held by the probe's accumulators at the end of the run (measured, not planned)."""
    total = 0
    for t in [*probe.sums.values(), probe.counts, *probe.per_prompt.values(), probe.rotation]:
        total += t.numel() * t.element_size()
    for acc in probe.points:
        for t in [*acc.s, *acc.rs, acc.hi, acc.lo, acc.topk, acc.abs, acc.cov, acc.sample, acc.sample_keys,
                  acc.shift, acc.rshift]:
            if t is not None:
                total += t.numel() * t.element_size()
    return total


# ---------------------------------------------------------------------------------------------
# Is the compat view of this model derivable from the raw pass? (one prompt, both weights)
# ---------------------------------------------------------------------------------------------
FINGERPRINT_DIMS = 16
STREAM_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_attn_out", "hook_mlp_out", "hook_resid_post")


def fingerprint(bridge, text: str, *, prepend_bos: bool, n_ctx: int, device: str | torch.device = "cpu",
                max_tokens: int = 32) -> dict[str, dict[str, np.ndarray]]:
    """Random projections of every probed activation of one prompt (≤ ``max_tokens`` tokens).

    Returns ``{"raw": {hook: [p, 16]}, "identity": …, "centred": …}`` (float64): ``identity`` is the
    raw projection, ``centred`` the projection of each stream vector centred per token (``mlp.hook_pre``
    unchanged), i.e. what :func:`run_probe`'s two derivations assume the compat model produces.
    The 16 directions are Gaussian, fixed by the width. Compare with :func:`fingerprint_error`.
    """
    ids, _ = tokenize_one(bridge, text, prepend_bos=prepend_bos, n_ctx=min(n_ctx, max_tokens))
    L = bridge.cfg.n_layers
    names = set(bridge.hook_dict)
    out: dict[str, dict[str, np.ndarray]] = {"identity": {}, "centred": {}}
    gens: dict[int, torch.Tensor] = {}

    def proj(width: int) -> torch.Tensor:
        if width not in gens:
            gens[width] = torch.randn(width, FINGERPRINT_DIMS, generator=torch.Generator().manual_seed(width),
                                      dtype=torch.float64)
        return gens[width]

    def make(name: str) -> Any:  # keyed by the name registered (hook.name may be an alias's target)
        def hook(x: torch.Tensor, hook: Any) -> None:
            v = x.detach()[0].double().cpu()
            g = proj(v.shape[-1])
            out["identity"][name] = (v @ g).numpy()
            stream = name.rsplit(".", 1)[-1] in STREAM_HOOKS
            out["centred"][name] = ((v - v.mean(-1, keepdim=True)) @ g).numpy() if stream else (v @ g).numpy()
        return hook

    hooks = [(n, make(n)) for i in range(L) for h in (*STREAM_HOOKS, "mlp.hook_pre")
             if (n := f"blocks.{i}.{h}") in names]
    if "ln_final.hook_in" in names:
        hooks.append(stop_before_unembed_hook())
    with torch.inference_mode():
        bridge.run_with_hooks(torch.tensor([ids], device=device), fwd_hooks=hooks, return_type=None)
    out["raw"] = out["identity"]
    return out


def fingerprint_error(derived: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> tuple[float, str]:
    """Max over hooks of max|derived − actual| / max|actual| (per hook), and the worst hook.

    A hook present in only one of the two counts as an error of ``inf``.
    """
    worst, where = 0.0, ""
    for name in sorted(set(derived) | set(actual)):
        if name not in derived or name not in actual:
            return float("inf"), name
        a, b = derived[name], actual[name]
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        err = float(np.max(np.abs(a - b))) / max(scale, 1e-30) if b.size else 0.0
        if not np.isfinite(err):
            return float("inf"), name
        if err > worst:
            worst, where = err, name
    return worst, where
