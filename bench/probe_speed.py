#!/usr/bin/env python3
"""Benchmark: the streaming probe against a bare forward pass and caching every activation.

    python bench/probe_speed.py [--model smollm2-135m] [--prompts 32] [--tokens 64] [--reps 3]
    python bench/probe_speed.py --paired --reps 5    # forward and probe alternated in one process

Times, on the same batch of ``--prompts`` corpus prompts cut to about ``--tokens`` tokens:
(a) a bare forward pass (logits), (b) the streaming probe (all accumulators on every token; stops
before the unembedding), (c) ``run_with_cache`` of every hook; and two cheaper probe plans:
(b') distribution statistics on 512 random content tokens per batch, (b'') norms only. Each variant runs in its own subprocess so its
peak RSS is its own. Prints one line per variant, then the ratios (lines containing "ratio").
Reported times are the median of ``--reps`` repetitions after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLED_TOKENS = 512
sys.path.insert(0, str(ROOT))


def _texts(n: int, tokens: int, tokenizer) -> list[str]:
    from lmfacts.prompts.corpus import load_builtin_corpus

    out: list[str] = []
    buf: list[int] = []
    for text in load_builtin_corpus().texts:  # consecutive prompts joined, cut to `tokens` tokens
        buf += tokenizer(text + "\n")["input_ids"]
        while len(buf) >= tokens:
            out.append(tokenizer.decode(buf[:tokens]))
            buf = buf[tokens:]
            if len(out) == n:
                return out
    raise SystemExit(f"the corpus holds fewer than {n}×{tokens} tokens")


def run_variant(variant: str, model: str, n: int, tokens: int, reps: int) -> dict:
    """Time one variant in this process; returns seconds per rep and peak RSS."""
    import torch

    from lmfacts.models.loading import load_model
    from lmfacts.probe.batching import make_batch
    from lmfacts.probe.probe import ProbePlan, run_probe

    lm = load_model(model)
    info, bridge = lm.info, lm.bridge
    texts = _texts(n, tokens, lm.tokenizer)
    batch = make_batch(bridge, texts, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx,
                       padding_side=info.padding_side, pad_id=info.pad_token_id or 0, device=info.device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def once() -> None:
        with torch.inference_mode():
            if variant == "forward":
                bridge(batch.tokens, attention_mask=batch.attention_mask)
            elif variant.startswith("probe"):
                plan = {"probe": ProbePlan(), "probe-sampled": ProbePlan(sample_tokens=SAMPLED_TOKENS),
                        "probe-norms": ProbePlan(distributions=False)}[variant]
                run_probe(bridge, texts, prepend_bos=info.prepends_bos, padding_side=info.padding_side,
                          pad_id=info.pad_token_id or 0, n_ctx=info.n_ctx, batch_size=len(texts), plan=plan)
            else:
                _, cache = bridge.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
                del cache

    times = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        once()
        if i:  # the first run is a warm-up
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": variant, "median_s": statistics.median(times), "times_s": times,
            "peak_rss_mb": peak / 1024, "rss_before_mb": rss_before / 1024,
            "tokens": int(batch.attention_mask.sum()), "shape": list(batch.tokens.shape)}


def run_paired(model: str, n: int, tokens: int, reps: int) -> None:
    """Bare forward and exact probe alternated in one process (same load for both), ``reps`` pairs after a warm-up.

    Prints each pair's times and probe/forward, then the median of the per-pair ratios: on a shared
    machine this is the figure to read (the separate-subprocess variants see different loads).
    """
    import os

    import torch

    from lmfacts.models.loading import load_model
    from lmfacts.probe.batching import make_batch
    from lmfacts.probe.probe import run_probe

    lm = load_model(model)
    info, bridge = lm.info, lm.bridge
    texts = _texts(n, tokens, lm.tokenizer)
    batch = make_batch(bridge, texts, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx,
                       padding_side=info.padding_side, pad_id=info.pad_token_id or 0, device=info.device)

    def forward() -> None:
        with torch.inference_mode():
            bridge(batch.tokens, attention_mask=batch.attention_mask)

    def probe() -> None:
        run_probe(bridge, texts, prepend_bos=info.prepends_bos, padding_side=info.padding_side,
                  pad_id=info.pad_token_id or 0, n_ctx=info.n_ctx, batch_size=len(texts))

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    forward(), probe()  # warm-up
    ratios = []
    for i in range(reps):
        order = (forward, probe) if i % 2 == 0 else (probe, forward)
        t = {fn.__name__: timed(fn) for fn in order}
        ratios.append(t["probe"] / t["forward"])
        print(f"pair {i + 1}: forward {t['forward']:.3f} s, probe {t['probe']:.3f} s, ratio {ratios[-1]:.3f}  "
              f"(load average {os.getloadavg()[0]:.2f})", flush=True)
    print(f"ratio probe/forward, median of {reps} pairs = {statistics.median(ratios):.3f}  (batch {list(batch.tokens.shape)})")


def main() -> int:
    """Spawn one subprocess per variant and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--paired", action="store_true",
                    help="alternate bare forward and exact probe in one process; print the median per-pair ratio")
    a = ap.parse_args()
    if a.paired:
        run_paired(a.model, a.prompts, a.tokens, a.reps)
        return 0
    if a.variant:
        print(json.dumps(run_variant(a.variant, a.model, a.prompts, a.tokens, a.reps)))
        return 0
    results = {}
    labels = {"forward": "(a) bare forward", "probe": "(b) streaming probe", "cache": "(c) run_with_cache(all)",
              "probe-sampled": f"(b') probe, {SAMPLED_TOKENS} tok/batch", "probe-norms": "(b'') probe, norms only"}
    for variant in ("forward", "probe", "cache", "probe-sampled", "probe-norms"):
        proc = subprocess.run([sys.executable, __file__, "--variant", variant, "--model", a.model,
                               "--prompts", str(a.prompts), "--tokens", str(a.tokens), "--reps", str(a.reps)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results[variant] = r
        print(f"{labels[variant]:28s} {r['median_s']:7.3f} s  (reps {', '.join(f'{t:.3f}' for t in r['times_s'])})"
              f"  peak RSS {r['peak_rss_mb']:.0f} MB (after load {r['rss_before_mb']:.0f} MB)  batch {r['shape']}")
    f, p, c = (results[k]["median_s"] for k in ("forward", "probe", "cache"))
    print(f"ratio (b)/(a) probe/forward = {p / f:.3f}")
    print(f"ratio (c)/(a) cache/forward = {c / f:.3f}")
    print(f"ratio (b)/(c) probe/cache   = {p / c:.3f}")
    print(f"ratio (b')/(a) sampled probe/forward = {results['probe-sampled']['median_s'] / f:.3f}")
    print(f"ratio (b'')/(a) norms-only probe/forward = {results['probe-norms']['median_s'] / f:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
