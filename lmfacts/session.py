"""The state of one lmfacts pytest run: options, run directory, models, probe results.

Hung on ``config.stash`` by the plugin. Heavy modules are imported only when a model or the probe
is first needed.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lmfacts.options import RunOptions, Target
from lmfacts.pool import ModelPool
from lmfacts.versions import package_version

#: A share of content tokens that are the unknown token from which the run's probe info (and the report's Models
#: notes) say so in a sentence (``probes[<target>].unknown_content``); any share is recorded as a number.
UNKNOWN_NOTE_SHARE = 0.05


class _SessionPool(ModelPool):
    """The session's model pool: drops the random twin (:mod:`lmfacts.models.twin`) before the resident model
    switches to compat processing. Every twin user is a raw-processing claim and tests run raw before compat
    per target, so the twin (a second full model) never lives alongside the compat switch, whose transient
    copies are the run's peak memory."""

    def get(self, target: Target, processing: str = "raw") -> Any:
        """As :meth:`ModelPool.get`, releasing the twin first when this call will switch to compat."""
        if processing == "compat":
            resident = self.resident(target)
            if resident is None or resident.info.weight_processing != "compat":
                import sys

                twin = sys.modules.get("lmfacts.models.twin")  # only if a twin can exist
                if twin is not None:
                    twin.release_twin()
        return super().get(target, processing)


class LmfactsSession:
    """Options, run directory and the shared expensive objects of one run."""

    def __init__(self, options: RunOptions, *, command: str, is_controller: bool, profile: dict[str, Any],
                 run_id: str, repo_dir: Path) -> None:
        from lmfacts.expectations import load_all

        self.options = options
        self.command = command
        self.is_controller = is_controller
        self.profile = profile
        self.run_id = run_id
        self.run_dir = options.report_dir / run_id
        self.repo_dir = repo_dir
        self.pool = _SessionPool(options, on_load=self._model_loaded)
        self.expectations = load_all(extra=options.expectations)  # built-in + --expectations files
        self.models: dict[str, dict[str, Any]] = {}
        self._probes: dict[tuple[Target, str], Any] = {}
        self._pending_compat: dict[Target, Any] = {}
        # how far the run got (run.json "run"."completion"): status running → finished | interrupted,
        # the selected test ids; None until the controller has collected (lmfacts.plugin.RunReporter)
        self.completion: dict[str, Any] | None = None
        self.probe_info: dict[str, dict[str, Any]] = {}  # per target id: how its probe results were made
        self._model_checks: dict[tuple[str, Target, str], Any] = {}
        # whether the raw probe pass also feeds the MA / AS / LL reductions (lmfacts.measures.beyond); the
        # plugin sets it from the collected claims (False when none of those families is selected)
        self.wants_beyond = True
        self._corpus: Any = None
        self.store: Any = None
        self.results: list[dict[str, Any]] = []

    # -- corpus ------------------------------------------------------------------------------
    @property
    def corpus(self) -> Any:
        """The prompt corpus (built-in or ``--prompts``), loaded once."""
        if self._corpus is None:
            from lmfacts.prompts.corpus import load_builtin_corpus, load_corpus_file
            from lmfacts.prompts.strategies import set_active_corpus

            self._corpus = (load_corpus_file(self.options.prompts) if self.options.prompts
                            else load_builtin_corpus())
            set_active_corpus(self._corpus)
        return self._corpus

    def probe_texts(self) -> list[str]:
        """The prompts of corpus-level claims (``--max-prompts`` takes a stratified subset)."""
        c = self.corpus
        if self.options.max_prompts and self.options.max_prompts < len(c):
            return list(c.sample(self.options.max_prompts, seed=0).texts)
        return list(c.texts)

    # -- models and probe -----------------------------------------------------------------------
    def probe(self, target: Target, processing: str) -> Any:
        """The probe result for (target, processing), computed once; one pass serves both processings.

        The raw pass also reduces the compat view (:func:`lmfacts.probe.probe.run_probe` ``derive``:
        ``centred`` for a LayerNorm model, ``identity`` otherwise). When a compat claim first asks,
        the compat model's activations on one corpus prompt are compared with the derived ones
        (:func:`lmfacts.probe.probe.fingerprint`); within ``float_tol(1e-4)`` the derived view is
        used, else a real compat pass runs. Either way ``run.json`` (``probes``) says which.
        """
        key = (target, processing)
        if key in self._probes:
            return self._probes[key]
        resident = self.pool.resident(target)
        if processing == "raw" or resident is None or resident.info.weight_processing == "raw":
            if (target, "raw") not in self._probes:
                self._run_raw_probe(target)
            if processing == "raw":
                return self._probes[key]
        self._probes[key] = self._compat_probe(target)
        return self._probes[key]

    def _probe_kwargs(self, lm: Any) -> dict[str, Any]:
        info = lm.info
        o = self.options
        return dict(prepend_bos=info.prepends_bos, padding_side=info.padding_side,
                    pad_id=info.pad_token_id if info.pad_token_id is not None else 0, n_ctx=info.n_ctx,
                    device=info.device, batch_size=o.batch_size, batch_tokens=o.batch_tokens,
                    memory_gb=o.probe_memory)

    def _run_raw_probe(self, target: Target) -> None:
        from lmfacts.probe.probe import ProbePlan, derivation_for, fingerprint, run_probe

        lm = self.pool.get(target, "raw")
        derive = derivation_for(lm.bridge)
        texts = self.probe_texts()
        census = self.content_census(target)
        beyond = None
        if self.wants_beyond:  # the MA / AS / LL reductions ride on this pass (lmfacts.measures.beyond)
            from lmfacts.measures.beyond import attach_sample

            causal = self.causal_check(target, "raw").causal
            info = lm.info
            beyond = attach_sample(lm.bridge, texts, range(len(texts)), causal=causal,
                                   lens=causal and bool(info.has_lm_head), prepend_bos=info.prepends_bos,
                                   n_ctx=info.n_ctx)
        res = run_probe(lm.bridge, texts, plan=ProbePlan(sample_tokens=self.options.probe_sample_tokens),
                        derive=derive, reductions=beyond.reductions if beyond else (), **self._probe_kwargs(lm))
        self._probes[(target, "raw")] = res
        if beyond is not None:
            self._model_checks[("beyond", target, "raw")] = beyond.result(
                res.seconds, "reduced inside the raw probe pass (one forward pass per batch for every claim)")
        info = {"raw": self._probe_summary(res)}
        if census.without_content:
            info["prompts_without_content"] = census.describe()
        if census.n_unknown:
            info["unknown_content_share"] = census.unknown_share
            if census.unknown_share >= UNKNOWN_NOTE_SHARE:
                info["unknown_content"] = census.describe_unknown()
        if res.compat is not None:
            text = self._check_text(lm)
            fp = fingerprint(lm.bridge, text, prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx,
                             device=lm.info.device)
            self._pending_compat[target] = (res.compat, fp[derive], text)
        self.probe_info[target.id] = info

    def content_census(self, target: Target) -> Any:
        """The :class:`lmfacts.probe.batching.ContentCensus` of the run's prompts on ``target`` (tokenisation
        only, computed once).

        Raises:
            NoContentTokensError: no prompt has a content position on this model (its tokenizer turns each
                into special tokens only); the message names the model, the count and examples with their
                tokens. Every probe claim then errors with it (E), instead of dividing by zero content tokens.
        """
        from lmfacts.probe.batching import NoContentTokensError, content_census

        key = ("content", target, "raw")  # tokenisation is the same under raw and compat weights
        census = self._model_checks.get(key)
        if census is None:
            lm = self.pool.resident(target) or self.pool.get(target, "raw")
            census = self._model_checks[key] = content_census(
                lm.bridge, self.probe_texts(), prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx)
        if census.n_content_tokens == 0:
            raise NoContentTokensError(
                f"no prompt of the run has a content token on {target.model}: {census.describe()}. Every corpus "
                "statistic is over content tokens (not BOS, special tokens or padding), so none can be judged: "
                "pass prompts with text this tokenizer spells (--prompts FILE).")
        return census

    def _check_text(self, lm: Any) -> str:
        from lmfacts.probe.batching import tokenize_one

        info = lm.info
        return next((t for t in self.probe_texts() if len(tokenize_one(
            lm.bridge, t, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)[0]) >= 4), self.probe_texts()[0])

    def _compat_probe(self, target: Target) -> Any:
        from lmfacts.probe.probe import ProbePlan, fingerprint, fingerprint_error, run_probe
        from lmfacts.tolerances import float_tol

        self.content_census(target)  # a compat claim may come first (the raw pass never ran): same check
        pending = self._pending_compat.pop(target, None)
        lm = self.pool.get(target, "compat")
        entry: dict[str, Any] = {}
        if pending is not None:
            derived, expected, text = pending
            actual = fingerprint(lm.bridge, text, prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx,
                                 device=lm.info.device)["raw"]
            err, hook = fingerprint_error(expected, actual)
            tol = float_tol(1e-4, self.options.dtype)
            entry = {"derivation": derived.derivation, "check_prompt": text[:60], "check_max_rel_error": err,
                     "check_worst_hook": hook, "check_tol": tol}
            if err <= tol:
                self.probe_info.setdefault(target.id, {})["compat"] = {
                    "source": f"derived from the raw pass ({derived.derivation})", **entry}
                return derived
            entry["fallback"] = (f"compat activations differ from the {derived.derivation} raw ones by {err:.3g} "
                                 f"(relative, at {hook}) > {tol:.3g}: a real compat pass was run")
        res = run_probe(lm.bridge, self.probe_texts(), plan=ProbePlan(sample_tokens=self.options.probe_sample_tokens),
                        **self._probe_kwargs(lm))
        res.processing = "compat"
        self.probe_info.setdefault(target.id, {})["compat"] = {"source": "its own compat pass", **entry,
                                                                **self._probe_summary(res)}
        return res

    @staticmethod
    def _probe_summary(res: Any) -> dict[str, Any]:
        return {"seconds": round(res.seconds, 3), "batching": res.batching, "memory": res.memory}

    def rebuild(self, target: Target, processing: str) -> Any:
        """The :class:`lmfacts.rebuild.RebuildReport` of (target, processing), measured once on corpus prompts."""
        from lmfacts.rebuild import measure_rebuild

        return self.model_check("rebuild", target, processing, lambda lm: measure_rebuild(
            lm.bridge, self.probe_texts(), processing=processing, dtype=self.options.dtype,
            prepend_bos=lm.info.prepends_bos, n_ctx=lm.info.n_ctx, device=lm.info.device))

    def causal_check(self, target: Target, processing: str) -> Any:
        """The :class:`lmfacts.rebuild.CausalCheck` of (target, processing), on the first corpus prompt of ≥ 2 tokens."""
        from lmfacts.probe.batching import tokenize_one
        from lmfacts.rebuild import measure_causal_leak

        def measure(lm: Any) -> Any:
            info = lm.info
            text = next((t for t in self.probe_texts() if len(tokenize_one(
                lm.bridge, t, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)[0]) >= 2), "The cat sat on the mat.")
            return measure_causal_leak(lm.bridge, text, dtype=self.options.dtype, prepend_bos=info.prepends_bos,
                                       n_ctx=info.n_ctx, device=info.device)

        return self.model_check("causal", target, processing, measure)

    def model_check(self, kind: str, target: Target, processing: str, measure: Any) -> Any:
        """``measure(loaded model)`` for (kind, target, processing), computed once and freed by
        :meth:`release_target` with the target's model (premise checks, rebuilds, the beyond pass)."""
        key = (kind, target, processing)
        if key not in self._model_checks:
            self._model_checks[key] = measure(self.pool.get(target, processing))
        return self._model_checks[key]

    def cached_check(self, kind: str, target: Target, processing: str) -> Any:
        """The result :meth:`model_check` holds for (kind, target, processing), or None (nothing is computed)."""
        return self._model_checks.get((kind, target, processing))

    def release_target(self, target: Target) -> None:
        """Free the model, probe results and premise checks of ``target`` once its tests are done."""
        self._probes = {k: v for k, v in self._probes.items() if k[0] != target}
        self._pending_compat.pop(target, None)
        from lmfacts.prompts.strategies import set_active_token_counter

        set_active_token_counter(None)  # it holds the bridge
        self._model_checks = {k: v for k, v in self._model_checks.items() if k[1] != target}
        import sys

        twin = sys.modules.get("lmfacts.models.twin")
        if twin is not None:  # the twin of this target's model goes with it
            twin.release_twin()
        self.pool.release()

    def _model_loaded(self, lm: Any) -> None:
        from lmfacts.probe.batching import token_ids
        from lmfacts.prompts.strategies import set_active_token_counter

        bridge, prepend = lm.bridge, lm.info.prepends_bos

        def count_tokens(text: str) -> int:  # what the per-prompt claims' single pass will see
            return len(token_ids(bridge, text, prepend_bos=prepend))

        set_active_token_counter(count_tokens)
        info = lm.info.to_dict()
        self.models[f"{info['name']}|{info['device']}|{info['weight_processing']}"] = info
        if self.is_controller:
            self.write_run_info()

    # -- run.json -------------------------------------------------------------------------------
    def run_info(self) -> dict[str, Any]:
        """The content of ``run.json``."""
        from lmfacts import __version__

        corpus: dict[str, Any]
        try:
            c = self.corpus
            corpus = {"source": str(c.source), "sha256": c.sha256, "n_prompts": len(c),
                      "n_probe_prompts": len(self.probe_texts())}
        except Exception as exc:  # reported, and the claims that need it fail on their own
            corpus = {"error": str(exc)}
        return {
            "schema_version": 1,
            "run": {
                "id": self.run_id,
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "lmfacts_version": __version__,
                "command": self.command,
                "versions": {
                    "torch": package_version("torch"),
                    "transformer_lens": package_version("transformer-lens"),
                    "transformers": package_version("transformers"),
                    "hypothesis": package_version("hypothesis"),
                    "numpy": package_version("numpy"),
                    "python": platform.python_version(),
                },
                "platform": platform.platform(),
                "hypothesis": self.profile,
                "corpus": corpus,
                "devices": list(self.options.devices),
                "options": self.options.to_dict(),
                "env": {k: os.environ[k] for k in ("CI", "HF_HUB_OFFLINE", "LMFACTS_CACHE_DIR") if k in os.environ},
                "argv": sys.argv,
                **({"completion": self.completion} if self.completion is not None else {}),
            },
            "models": list(self.models.values()),
            "probes": self.probe_info,
            "per_prompt": self._per_prompt_info(),
        }

    @staticmethod
    def _per_prompt_info() -> dict[str, Any]:
        from lmfacts.prompts.strategies import DEFAULT_MAX_CHARS, ROBUSTNESS_MAX_TOKENS

        return {"example_cost": "one forward pass of the example's prompt (no batching, no padding)",
                "robustness_max_tokens": ROBUSTNESS_MAX_TOKENS, "natural_max_chars": DEFAULT_MAX_CHARS}

    def open_store(self) -> None:
        """Create the run directory and write ``run.json`` (controller only).

        The directory is this run's alone (:func:`lmfacts.report.paths.claim_run_dir`): when another run
        started in the same second already holds ``run_id``, the run id becomes ``run_id.2`` (…).
        """
        from lmfacts.report.paths import claim_run_dir
        from lmfacts.report.store import RunStore

        if self.store is None:
            self.run_dir = claim_run_dir(self.options.report_dir, self.run_id)
            self.run_id = self.run_dir.name
        self.store = RunStore(self.run_dir)
        self.write_run_info()

    def write_run_info(self) -> None:
        """(Re)write ``run.json``."""
        if self.store is not None:
            self.store.write_run_info(self.run_info())

    def add_result(self, record: dict[str, Any]) -> None:
        """Append one record to ``results.jsonl`` as soon as its test finishes."""
        self.results.append(record)
        if self.store is not None:
            self.store.append_result(record)
