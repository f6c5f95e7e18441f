"""The guard: compare one claim's outcome and headline values with its model's baseline.

Pure functions (no pytest); the plugin (:mod:`lmfacts.plugin`) turns a :class:`Decision` into the
test's outcome. The rules (module doc of :mod:`lmfacts.baselines`):

==================  ===================================  ==================================================
recorded            today                                decision
==================  ===================================  ==================================================
failed              fails, headline values within tol    ``xfail``: a known finding (reason quotes both)
failed              passes                               ``xpass``: XPASS(strict), the run fails
failed              fails, a value moved past its tol    ``fail``: names the claim, old and new value
passed              passes, a value left its tol         ``fail``: names the claim, old and new value
passed              fails                                ``keep`` (its own failure; never a pass)
any                 skipped / error / inconclusive       ``keep`` (a recorded pass whose value left its
                                                         tol while inconclusive: ``fail``)
==================  ===================================  ==================================================

A headline value the baseline holds but today's run did not measure (or measured as NaN) makes the
comparison impossible: ``error`` on a claim that would otherwise pass or be a known finding.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from lmfacts.baselines import Baseline, ClaimBaseline

#: What the run must share with a baseline for it to be compared at all (``[model]`` keys).
CONFIG_KEYS = ("revision", "weight_format", "quantization", "dtype")


@dataclass(frozen=True)
class RunFacts:
    """What comparability needs to know about today's run of one model."""

    model: str
    revision: str | None
    weight_format: str | None
    quantization: str | None
    dtype: str
    corpus_sha256: str | None
    n_prompts: int | None
    probe_sample_tokens: int | None
    hypothesis_profile: str | None
    prepends_bos: bool | None = None  # the BOS convention the run used (None: unknown)
    bridge_prepends_bos: bool | None = None  # what the bridge would have done (``--prepend-bos auto``)


@dataclass
class Decision:
    """What the guard decided for one (claim, model): ``action`` and the message that explains it.

    ``action``: ``"keep"`` (the outcome stands), ``"xfail"`` (known finding), ``"xpass"`` (a known
    finding stopped holding: the run fails), ``"fail"`` (a headline value left its tolerance) or
    ``"error"`` (a recorded headline value was not measured). ``info`` is ``record.baseline``. A
    ``"keep"`` with a message (a recorded pass that fails today and also left its tolerance) adds the
    message to the failure's reason.
    """

    action: str
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def select(baselines: list[Baseline], facts: RunFacts) -> tuple[Baseline | None, str | None]:
    """The baseline of ``facts.model`` in today's configuration, or why the model's baseline does not apply.

    Returns ``(None, None)`` when the model has no baseline file, ``(baseline, None)`` for a file of
    the same configuration (:data:`CONFIG_KEYS`), ``(baseline, why)`` when only another configuration
    was recorded.
    """
    mine = [b for b in baselines if b.name == facts.model]
    if not mine:
        return None, None
    for b in mine:
        if all(b.model.get(k) == getattr(facts, k) for k in CONFIG_KEYS):
            return b, None
    b = mine[0]
    diffs = [f"{k} {getattr(facts, k)!s} (baseline: {b.model.get(k)!s})" for k in CONFIG_KEYS
             if b.model.get(k) != getattr(facts, k)]
    return b, "the run's " + ", ".join(diffs) + " differ from the recorded configuration"


def comparability(b: Baseline, facts: RunFacts, *, reads_prompts: bool, per_prompt: bool) -> str | None:
    """Why ``b`` cannot be compared with a claim of today's run, or ``None`` when it can.

    A claim that read prompts (the probe, the corpus) is compared only on the same corpus (sha256) and
    number of probe prompts with the default probe token sampling; a per-prompt (Hypothesis) claim
    also only under the same Hypothesis profile. Weight-only claims always are.
    """
    mb = b.measured_by
    if per_prompt and mb.get("hypothesis_profile") and facts.hypothesis_profile != mb.get("hypothesis_profile"):
        return (f"examples drawn by Hypothesis profile {facts.hypothesis_profile}, the baseline's by "
                f"{mb.get('hypothesis_profile')}")
    if not reads_prompts:
        return None
    want = mb.get("corpus_sha256")
    if want is not None and facts.corpus_sha256 != want:
        return f"the run's corpus (sha256 {str(facts.corpus_sha256)[:12]}…) is not the baseline's ({str(want)[:12]}…)"
    n = mb.get("n_prompts")
    if n is not None and facts.n_prompts != n:
        return f"the run probes {facts.n_prompts} prompts (--max-prompts), the baseline {n}"
    if facts.probe_sample_tokens != mb.get("probe_sample_tokens"):
        return (f"the run's probe token sampling ({facts.probe_sample_tokens}) is not the baseline's "
                f"({mb.get('probe_sample_tokens')})")
    # files recorded before prepends_bos was kept assume the bridge's default (--prepend-bos auto)
    recorded_bos = mb.get("prepends_bos", facts.bridge_prepends_bos)
    if facts.prepends_bos is not None and recorded_bos is not None and facts.prepends_bos != recorded_bos:
        def said(b: bool) -> str:
            return "prepends BOS" if b else "prepends no BOS"
        return (f"the run {said(facts.prepends_bos)} (--prepend-bos), the baseline's run "
                f"{said(bool(recorded_bos))}")
    return None


def _today(measured: dict[str, Any], key: str) -> float | None:
    from lmfacts.claims import headline_value

    try:
        v = headline_value(measured, key)
    except KeyError:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        return None
    return float(v)


def short_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it, else as given."""
    import os

    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _g(x: float) -> str:
    return f"{x:.6g}"


def judge(cb: ClaimBaseline, b: Baseline, *, model: str, raw_outcome: str, raw_reason: str | None,
          measured: dict[str, Any]) -> Decision:
    """Apply the rules (module doc) to today's outcome ``raw_outcome`` (passed / failed / inconclusive /
    skipped / error) and ``measured`` values of claim ``cb.claim`` on ``model``."""
    values: dict[str, dict[str, Any]] = {}
    moved, missing = [], []
    for h in cb.headline:
        v = _today(measured, h.key)
        within = v is not None and h.within(v)
        values[h.key] = {"recorded": h.value, "tol": h.tol, "today": v, "within": within}
        if v is None:
            missing.append(h.key)
        elif not within:
            moved.append(f"{h.key} = {_g(v)}, recorded {_g(h.value)} ± {_g(h.tol)}")
    now = ", ".join(f"{h.key} = {_g(values[h.key]['today'])} (recorded {_g(h.value)} ± {_g(h.tol)})"
                    for h in cb.headline if values[h.key]["today"] is not None) or "no headline values"
    info: dict[str, Any] = {"file": b.file, "outcome": cb.outcome, "reason": cb.reason, "values": values,
                            "tolerance": {h.key: h.tol for h in cb.headline}, "status": "compared",
                            "raw_outcome": raw_outcome, "raw_reason": raw_reason}
    where = f"{cb.claim} on {model}"
    src = f"baseline {short_path(b.file)}"
    if raw_outcome in ("skipped", "error"):
        info["status"] = f"not compared: the claim {'was skipped' if raw_outcome == 'skipped' else 'errored'} today"
        return Decision("keep", "", info)
    if cb.outcome == "failed" and raw_outcome == "passed":
        info["verdict"] = "known finding no longer holds"
        return Decision("xpass", f"[XPASS(strict)] known finding of {where} no longer holds ({src}): recorded "
                                 f"\"{cb.reason}\"; today the claim passes: {now}", info)
    if missing:
        msg = (f"{where}: recorded headline value(s) {', '.join(missing)} not measured today, so the {src} "
               f"cannot be compared")
        if raw_outcome == "failed" and cb.outcome == "passed":
            info["verdict"] = "failed (own predicate); " + msg
            return Decision("keep", "", info)
        info["verdict"] = "not measured"
        return Decision("error", msg, info)
    if cb.outcome == "failed":
        if raw_outcome == "inconclusive":
            info["verdict"] = "known finding inconclusive today"
            return Decision("keep", "", info)
        if moved:
            info["verdict"] = "known finding moved past its tolerance"
            return Decision("fail", f"{where}: known finding moved past its baseline tolerance: {'; '.join(moved)} "
                                    f"({src}); recorded \"{cb.reason}\"; today: {raw_reason}", info)
        info["verdict"] = "known finding"
        return Decision("xfail", f"known finding ({src}): recorded \"{cb.reason}\"; today: \"{raw_reason}\" ({now})",
                        info)
    # recorded pass
    if raw_outcome == "failed":
        info["verdict"] = "failed (own predicate)" + (f"; also left its baseline: {'; '.join(moved)}" if moved else "")
        return Decision("keep", f"also left its {src}: {'; '.join(moved)}" if moved else "", info)
    if moved:
        info["verdict"] = "left its baseline tolerance"
        return Decision("fail", f"{where}: headline value left its baseline tolerance: {'; '.join(moved)} ({src})",
                        info)
    info["verdict"] = "within baseline" if raw_outcome == "passed" else f"{raw_outcome}; within baseline"
    return Decision("keep", "", info)
