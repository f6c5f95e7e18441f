#!/usr/bin/env python3
"""Benchmark: the full claim suite against its floor, in one run and one process tree.

    python bench/suite_vs_floor.py --model smollm2-135m [--max-prompts N] [--suite-args "-k RN"] [--device cuda]
    python bench/suite_vs_floor.py --widths [--probe-memory GB]
    python bench/suite_vs_floor.py --model smollm2-135m --replay   # + the suite's own compute floor

Floor (one subprocess): load the cached model, one bare forward pass (with logits) over the corpus
in length-sorted batches packed like the probe's (``--batch-tokens``), and the singular values of
every 2-D weight matrix. Suite (one subprocess, right after): ``pytest claims/ --model M`` with the
same corpus options. Prints both wall times, their ratio, the peak RSS of each (its own
``ru_maxrss``) and the load average beside them. ``--device`` (default cpu; ``auto`` = the best
available): the floor loads the model there and runs its forward and svdvals there (synchronised
before each part is timed), and the suite gets the same ``--device``; on CUDA the floor also
prints its peak GPU memory.

``--replay``: the suite's forward passes are recorded and replayed bare afterwards
(:mod:`bench/suite_forwards.py`); prints the seconds per kind of pass and ``load + replay + svdvals``,
the lower bound of the suite under the claims' sample sizes, as a ratio to the floor.

``--widths``: random GPT-2 models at the gpt2 / medium / large / xl widths (d_model 768, 1024,
1280, 1600; 4 layers, 8 prompts) run through the probe under ``--probe-memory``; prints the
memory plan (float64 / float32 / float32 subset of points), the planned and measured accumulator
memory, and the plan the same budget gives at the real depth (13, 25, 37, 49 points).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WIDTHS = {"gpt2": (768, 12, 12), "gpt2-medium": (1024, 16, 24), "gpt2-large": (1280, 20, 36),
          "gpt2-xl": (1600, 25, 48)}


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def floor(model: str, max_prompts: int | None, batch_tokens: int, device: str = "cpu") -> dict:
    """The floor, in this process: returns seconds per part and this process's peak RSS (MB)."""
    import torch

    from lmfacts.models.loading import load_model
    from lmfacts.probe.batching import pad_rows, padding_stats, plan_batches
    from lmfacts.probe.probe import tokenize_corpus
    from lmfacts.prompts.corpus import load_builtin_corpus

    t0 = time.perf_counter()
    lm = load_model(model, device=device)
    info, bridge = lm.info, lm.bridge
    _sync(device)
    t_load = time.perf_counter() - t0
    corpus = load_builtin_corpus()
    texts = list(corpus.sample(max_prompts, seed=0).texts if max_prompts and max_prompts < len(corpus)
                 else corpus.texts)
    t1 = time.perf_counter()
    rows, _ = tokenize_corpus(bridge, texts, prepend_bos=info.prepends_bos, n_ctx=info.n_ctx)
    lengths = [len(r) for r in rows]
    batches = plan_batches(lengths, batch_tokens=batch_tokens, batch_cost=64 if device == "cpu" else 1024)  # as the probe
    with torch.inference_mode():
        for index in batches:
            b = pad_rows(bridge, [rows[i] for i in index], [texts[i] for i in index], [],
                         prepend_bos=info.prepends_bos, padding_side=info.padding_side,
                         pad_id=info.pad_token_id or 0, device=info.device)
            bridge(b.tokens, attention_mask=b.attention_mask)
    _sync(device)
    t_fwd = time.perf_counter() - t1
    t2 = time.perf_counter()
    seen: set[int] = set()
    with torch.inference_mode():
        for _, p in bridge.named_parameters():
            if p.ndim == 2 and p.data_ptr() not in seen:
                seen.add(p.data_ptr())
                torch.linalg.svdvals(p.detach().float())
    _sync(device)
    t_svd = time.perf_counter() - t2
    out = {"load_s": t_load, "forward_s": t_fwd, "svd_s": t_svd, "total_s": time.perf_counter() - t0,
           "n_matrices": len(seen), "padding": padding_stats(lengths, batches), "device": device,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Run ``cmd`` in a wrapper process (``env``: extra environment variables); returns (seconds, peak RSS MB of
    cmd's tree, return code, output tail)."""
    wrapper = [sys.executable, __file__, "--wrap", "--", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(wrapper, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    stats = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"peak_rss_mb": float("nan"), "rc": -1}
    return seconds, stats["peak_rss_mb"], stats["rc"], (proc.stdout + proc.stderr)[-4000:]


def wrap(cmd: list[str]) -> int:
    """Run ``cmd`` and print its return code and the peak RSS of its process tree (ru_maxrss of children)."""
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    print(json.dumps({"rc": rc, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
    return 0


def compare(a: argparse.Namespace) -> int:
    """Floor, then suite; print both with ratio and peak RSS."""
    corpus_args = ["--max-prompts", str(a.max_prompts)] if a.max_prompts else []
    print(f"load average before: {_loadavg()}", flush=True)
    fcmd = [sys.executable, __file__, "--floor", "--model", a.model, "--batch-tokens", str(a.batch_tokens),
            "--device", a.device, *corpus_args]
    f_s, f_rss, f_rc, f_out = _child(fcmd)
    if f_rc:
        print(f_out, file=sys.stderr)
        return 1
    detail = json.loads([ln for ln in f_out.splitlines() if ln.startswith('{"load_s"')][-1])
    print(f"floor: {f_s:7.1f} s wall (load {detail['load_s']:.1f} + forward {detail['forward_s']:.1f} + svdvals "
          f"{detail['svd_s']:.1f} of {detail['n_matrices']} matrices), peak RSS {f_rss:.0f} MB, padding overhead "
          f"{detail['padding']['overhead']:.3f}, device {detail['device']}"
          + (f", peak GPU {detail['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in detail else "")
          + f"; load average {_loadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        scmd = [sys.executable, "-m", "pytest", "claims/", "--model", a.model, *corpus_args, "-p", "no:cacheprovider",
                "-q", "--report-dir", tmp, "--batch-tokens", str(a.batch_tokens), "--device", a.device,
                *shlex.split(a.suite_args)]
        env = None
        if a.replay:  # record the suite's forward passes (bench/suite_forwards.py); the recording costs ~0.1 s
            record = str(Path(tmp) / "forwards.pt")
            scmd += ["-p", "suite_forwards"]
            env = {"LMFACTS_RECORD_FORWARDS": record,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")]))}
        s_s, s_rss, s_rc, s_out = _child(scmd, env)
        summary = next((ln for ln in reversed(s_out.splitlines()) if " in " in ln and ("passed" in ln or "failed" in ln)),
                       "")
        print(f"suite: {s_s:7.1f} s wall, peak RSS {s_rss:.0f} MB, pytest rc {s_rc} ({summary.strip('= ')}); "
              f"load average {_loadavg()}")
        print(f"ratio suite/floor = {s_s / f_s:.3f}   peak RSS suite = {s_rss / 1024:.2f} GB", flush=True)
        if a.replay:
            _print_replay(a, record, f_s, detail)
    return 0


def _print_replay(a: argparse.Namespace, record: str, f_s: float, detail: dict) -> None:
    """Replay the recorded passes bare (bench/suite_forwards.py) and print the suite's lower bound."""
    proc = subprocess.run([sys.executable, __file__, "--replay-file", record, "--model", a.model, "--device", a.device],
                          capture_output=True, text=True, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines or not lines[-1].startswith("{"):
        print(f"replay failed (rc {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}", file=sys.stderr)
        return
    kinds = json.loads(lines[-1])
    total = 0.0
    for k, v in kinds.items():
        total += v["seconds"]
        print(f"  replayed bare: {k:10s} {v['calls']:5d} calls, {v['tokens']:7d} tokens "
              f"({v['twin_calls']} calls of the twin): {v['seconds']:6.1f} s")
    bound = detail["load_s"] + detail["svd_s"] + total
    print(f"suite's own compute floor (load {detail['load_s']:.1f} + replayed passes {total:.1f} + svdvals "
          f"{detail['svd_s']:.1f}) = {bound:.1f} s: ratio ≥ {bound / f_s:.3f} under the claims' current sample sizes")


def widths(a: argparse.Namespace) -> int:
    """Peak accumulator memory per GPT-2 width under the budget."""
    import torch

    from lmfacts.models.loading import build_tiny_model
    from lmfacts.probe.accumulators import GB, budget_bytes, plan_memory
    from lmfacts.probe.probe import run_probe
    from lmfacts.prompts.corpus import load_builtin_corpus

    texts = list(load_builtin_corpus().sample(a.prompts, seed=0).texts)
    budget = budget_bytes(a.probe_memory, "cpu")
    print(f"budget {budget / GB:.3f} GB; {a.layers} layers, {len(texts)} prompts; load average {_loadavg()}")
    for name, (d, heads, depth) in WIDTHS.items():
        lm = build_tiny_model("tiny-gpt2", seed=0, config_overrides={
            "n_embd": d, "n_head": heads, "n_layer": a.layers, "n_inner": 4 * d, "n_positions": 1024})
        info = lm.info
        t0 = time.perf_counter()
        with torch.inference_mode():
            r = run_probe(lm.bridge, texts, prepend_bos=info.prepends_bos, padding_side=info.padding_side or "right",
                          pad_id=info.pad_token_id or 0, n_ctx=info.n_ctx, memory_gb=a.probe_memory)
        m = r.memory
        full = plan_memory(depth + 1, d, budget, n_prompts=len(texts), n_norm_rows=5 * depth * 2)
        pts = str(m["covariance_points"]).replace(" ", "")
        print(f"{name:12s} d={d:5d}: covariance {m['covariance']:14s} points {pts:>10} "
              f"planned {m['planned_gb']:.4f} GB, measured {m['measured_gb']:.4f} GB (≤ budget: "
              f"{m['measured_gb'] <= budget / GB}); at full depth ({depth + 1} points): {full.covariance}, "
              f"{full.bytes / GB:.3f} GB, {len(full.cov_points)} covariance points; probe {time.perf_counter() - t0:.1f} s")
        del lm, r
    return 0


def main() -> int:
    """Parse the arguments and run the comparison, the floor alone, or the widths table."""
    if "--wrap" in sys.argv:
        return wrap(sys.argv[sys.argv.index("--") + 1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-prompts", type=int, default=None)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--suite-args", default="", help="extra pytest arguments for the suite, one string")
    ap.add_argument("--widths", action="store_true")
    ap.add_argument("--probe-memory", type=float, default=None, help="GB, for --widths")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (floor and suite alike)")
    ap.add_argument("--replay", action="store_true",
                    help="also replay the suite's recorded forward passes bare: its compute floor (bench/suite_forwards.py)")
    ap.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--replay-file", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.device == "auto":
        from lmfacts.options import resolve_auto_device

        a.device = resolve_auto_device()
    if a.floor:
        print(json.dumps(floor(a.model, a.max_prompts, a.batch_tokens, a.device)))
        return 0
    if a.replay_file:
        from suite_forwards import replay

        print(json.dumps(replay(a.model, a.replay_file, a.device)))
        return 0
    return widths(a) if a.widths else compare(a)


if __name__ == "__main__":
    sys.exit(main())
