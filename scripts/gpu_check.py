#!/usr/bin/env python3
"""The prepared GPU check: the whole catalogue on CUDA in float32 and bfloat16, summarised in minutes.

    scripts/gpu_check.sh                      # cuda: smollm2-135m and minilm-l6, full corpus, + the benchmark
    scripts/gpu_check.sh --device cpu         # dry mode: tiny-llama and tiny-bert, 8 prompts, on CPU
    scripts/gpu_check.sh --out DIR --budget-s 480 --jobs 4 --suite-args "-m RN"

For every (model, dtype) it runs ``pytest claims/ --model M --device D --dtype T`` in its own process
(``--jobs`` at a time; the GPU is shared, CPU threads are split between them) with
``LMFACTS_CUDA_MEMORY_LOG`` set, so the model pool logs ``torch.cuda.max_memory_allocated`` per model
(:mod:`lmfacts.pool`). Then ``bench/suite_vs_floor.py --device D`` if the benchmark has that option
(else the summary says it was skipped and why). Everything shares one wall-clock budget (``--budget-s``,
default 480 s = 8 minutes): a run still going when the budget is spent is killed and reported as timed out.

Output, in ``--out`` (default ``$OUT`` if set, else ``reports/gpu-check-<UTC time>``): ``summary.md`` and
``summary.json`` (per run: exit status, wall time, peak RSS, peak GPU memory, outcome counts; per model and
claim: the outcome in each dtype beside the reference, with the first headline value), ``logs.txt`` (the
tail of every run's output) and ``reports/`` (the runs' own replication reports). The reference of a model
is its recorded baseline (``fixtures/baselines``: a CPU float32 run on the full corpus) when there is one
for its name, else the float32 run of this check. Outcomes are compared as the claim's own verdict (the
``raw_outcome`` before the baseline guard): ``xfailed`` counts as ``failed``, ``xpassed`` as ``passed``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = {"cuda": ("smollm2-135m", "minilm-l6"), "cpu": ("tiny-llama", "tiny-bert")}
DTYPES = ("float32", "bfloat16")
#: the claim's own verdict, with the baseline guard's relabelling undone
_SAME = {"xfailed": "failed", "xpassed": "passed"}


@dataclass
class RunResult:
    """One ``pytest claims/`` run of the check (times in seconds, memory in MB)."""

    model: str
    dtype: str
    device: str
    report_dir: str
    rc: int | None = None
    timed_out: bool = False
    wall_s: float = 0.0
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    tail: str = ""


def normalised(outcome: str | None) -> str | None:
    """``xfailed`` → ``failed``, ``xpassed`` → ``passed``; other outcomes (and None) unchanged."""
    return _SAME.get(outcome, outcome) if outcome else outcome


def claim_rows(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per claim id: ``outcome`` (after the baseline guard), ``verdict`` (the claim's own outcome,
    normalised) and ``headline`` (``{key: value}`` of its headline keys that were measured).

    ``records``: the lines of a run's ``results.jsonl`` (the last record of a claim wins, as in the report).
    """
    from lmfacts.report.table import headline_quantities

    out: dict[str, dict[str, Any]] = {}
    for r in records:
        claim = str(r.get("claim") or "?")
        raw = (r.get("baseline") or {}).get("raw_outcome") or r.get("outcome")
        heads = {q.name: q.value for q in headline_quantities(r) if q.value is not None} if r.get("headline") else {}
        out[claim] = {"outcome": r.get("outcome"), "verdict": normalised(raw), "headline": heads}
    return out


def reference_rows(baseline: Any) -> dict[str, dict[str, Any]]:
    """Per claim id of a :class:`lmfacts.baselines.Baseline`: the recorded ``verdict`` and ``headline``
    values with their tolerances (``{key: [value, tol]}``)."""
    return {cid: {"verdict": normalised(cb.outcome), "headline": {h.key: [h.value, h.tol] for h in cb.headline}}
            for cid, cb in baseline.claims.items()}


def compare(runs: list[RunResult], references: dict[str, dict[str, dict[str, Any]]],
            dtypes: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Per model, one row per claim: the reference verdict and each dtype's, and which dtypes differ.

    ``references``: per model name, :func:`reference_rows` of its baseline; a model without one is compared
    against this check's run in ``dtypes[0]``. A claim absent from a run (not collected, run timed out)
    shows as None and does not count as differing. Row keys: ``claim``, ``reference`` (``"baseline"`` or the
    dtype), ``ref_verdict``, ``ref_headline``, ``<dtype>`` (verdict), ``<dtype>_headline``, ``differs``
    (the dtypes whose verdict differs from the reference's).
    """
    by_model: dict[str, dict[str, RunResult]] = {}
    for r in runs:
        by_model.setdefault(r.model, {})[r.dtype] = r
    table: dict[str, list[dict[str, Any]]] = {}
    for model, per_dtype in by_model.items():
        ref = references.get(model)
        ref_name = "baseline" if ref is not None else dtypes[0]
        if ref is None:
            ref = per_dtype[dtypes[0]].claims if dtypes[0] in per_dtype else {}
        claims = sorted({c for r in per_dtype.values() for c in r.claims} | set(ref))
        rows = []
        for claim in claims:
            ref_row = ref.get(claim) or {}
            row: dict[str, Any] = {"claim": claim, "reference": ref_name, "ref_verdict": ref_row.get("verdict"),
                                   "ref_headline": ref_row.get("headline") or {}}
            differs = []
            for dt in dtypes:
                got = (per_dtype[dt].claims.get(claim) if dt in per_dtype else None) or {}
                row[dt] = got.get("verdict")
                row[f"{dt}_headline"] = got.get("headline") or {}
                if got and ref_row and got.get("verdict") != ref_row.get("verdict"):
                    differs.append(dt)
            row["differs"] = differs
            rows.append(row)
        table[model] = rows
    return table


def _read_records(run_dir: Path) -> list[dict[str, Any]]:
    """The results.jsonl records of every run under ``run_dir`` (:meth:`RunStore.read_results`: a line cut
    by a killed run is skipped)."""
    from lmfacts.report.store import RunStore

    runs = [p for p in run_dir.iterdir() if p.is_dir()] if run_dir.is_dir() else []
    return [rec for d in runs for rec in RunStore(d).read_results()]


def _peak_gpu_mb(memlog: Path) -> float | None:
    if not memlog.is_file():
        return None
    peaks = [json.loads(x)["peak_bytes"] for x in memlog.read_text().splitlines() if x.strip()]
    return round(max(peaks) / 2**20, 1) if peaks else None


def _wait(pid: int, deadline: float) -> tuple[int | None, float | None, bool]:
    """Wait for ``pid`` (polling every 0.5 s) until ``deadline``; return (exit code, peak RSS MB, timed out)."""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), round(usage.ru_maxrss / 1024, 1), False
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)  # the run's own process group (start_new_session)
            except ProcessLookupError:
                pass
            _, status, usage = os.wait4(pid, 0)
            return None, round(usage.ru_maxrss / 1024, 1), True
        time.sleep(0.5)


def run_suite(run: RunResult, *, out: Path, suite_args: list[str], max_prompts: int | None, deadline: float,
              threads: int) -> RunResult:
    """Run ``pytest claims/`` for ``run`` (model, dtype, device) and fill in its results (in place)."""
    tag = f"{run.model}-{run.dtype}".replace("/", "_")
    log, memlog = out / "runs" / f"{tag}.log", out / "runs" / f"{tag}.mem.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "claims/", "--model", run.model, "--device", run.device,
           "--dtype", run.dtype, "--report-dir", run.report_dir, "-p", "no:cacheprovider", "-q",
           *(["--max-prompts", str(max_prompts)] if max_prompts else []), *suite_args]
    env = dict(os.environ, LMFACTS_CUDA_MEMORY_LOG=str(memlog), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    env.pop("PYTEST_XDIST_WORKER", None)
    t0 = time.monotonic()
    with log.open("w") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        run.rc, run.peak_rss_mb, run.timed_out = _wait(proc.pid, deadline)
        proc.returncode = run.rc if run.rc is not None else -9  # reaped by _wait
    run.wall_s = round(time.monotonic() - t0, 1)
    run.peak_gpu_mb = _peak_gpu_mb(memlog)
    run.tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    records = _read_records(Path(run.report_dir))
    run.claims = claim_rows(records)
    for r in run.claims.values():
        run.counts[str(r["outcome"])] = run.counts.get(str(r["outcome"]), 0) + 1
    return run


def bench(device: str, *, max_prompts: int | None, deadline: float, out: Path) -> dict[str, Any]:
    """Run ``bench/suite_vs_floor.py --device DEVICE`` if the benchmark has ``--device``; else say why not."""
    script = ROOT / "bench" / "suite_vs_floor.py"
    if not script.is_file():
        return {"status": "skipped", "why": "bench/suite_vs_floor.py is absent"}
    helptext = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60).stdout
    if not re.search(r"--device\b", helptext):
        return {"status": "skipped", "why": "bench/suite_vs_floor.py has no --device option (helper perf's file); "
                                           "the benchmark was not run on this device"}
    model = DEFAULT_MODELS["cuda"][0] if device.startswith("cuda") else DEFAULT_MODELS["cpu"][0]
    cmd = [sys.executable, str(script), "--model", model, "--device", device,
           *(["--max-prompts", str(max_prompts)] if max_prompts else [])]
    log = out / "runs" / "bench.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        rc, rss, timed_out = _wait(proc.pid, deadline)
        proc.returncode = rc if rc is not None else -9
    lines = log.read_text(errors="replace").splitlines()
    return {"status": "timed out" if timed_out else "ran", "rc": rc, "wall_s": round(time.monotonic() - t0, 1),
            "command": shlex.join(cmd), "output": [ln for ln in lines if ln.startswith(("floor", "suite", "ratio"))]
            or lines[-12:]}


def _gpu_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CUDA not available"
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        return f"unknown ({exc})"


def _prepare(models: tuple[str, ...], deadline: float) -> dict[str, Any]:
    """Load each model once on CPU (converts a GGUF / extracts a zip into the lmfacts cache) so the parallel
    runs do not all convert it at the same time; returns the seconds spent and any load error."""
    t0 = time.monotonic()
    code = ("import sys\nfrom lmfacts.models.loading import load_model\n"
            "for m in sys.argv[1:]:\n    load_model(m).release()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, *models], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, text=True)
    rc, _, timed_out = _wait(proc.pid, deadline)
    text = proc.stdout.read() if proc.stdout else ""
    proc.returncode = rc if rc is not None else -9
    return {"wall_s": round(time.monotonic() - t0, 1), "rc": rc, "timed_out": timed_out,
            "error": None if rc == 0 else text[-2000:]}


def _fmt_head(heads: dict[str, Any]) -> str:
    if not heads:
        return ""
    key, v = next(iter(heads.items()))
    if isinstance(v, list) and len(v) == 2:  # reference: [value, tol]
        return f"{key}={_num(v[0])}±{_num(v[1])}"
    return f"{key}={_num(v)}"


def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:.4g}"


def render_markdown(summary: dict[str, Any]) -> str:
    """The human summary (``summary.md``) of a :func:`main` summary dict."""
    dts = summary["dtypes"]
    lines = [f"# lmfacts GPU check ({summary['device']})", "",
             f"started {summary['started_utc']}, wall {summary['wall_s']} s of a {summary['budget_s']} s budget; "
             f"GPU: {summary.get('gpu') or 'none'}; jobs in parallel: {summary['jobs']}"
             + (f"; --max-prompts {summary['max_prompts']}" if summary.get("max_prompts") else "; full corpus"),
             f"prepare (model conversion/extraction): {summary['prepare']['wall_s']} s, rc {summary['prepare']['rc']}",
             "", "## Runs", "", "| model | dtype | rc | wall s | peak RSS MB | peak GPU MB | outcomes |",
             "|---|---|---|---|---|---|---|"]
    for r in summary["runs"]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
        rc = "timed out" if r["timed_out"] else r["rc"]
        lines.append(f"| {r['model']} | {r['dtype']} | {rc} | {r['wall_s']} | {r['peak_rss_mb']} | "
                     f"{r['peak_gpu_mb'] if r['peak_gpu_mb'] is not None else 'n/a'} | {counts} |")
    for model, rows in summary["comparison"].items():
        ref = rows[0]["reference"] if rows else "?"
        n_diff = sum(1 for row in rows if row["differs"])
        lines += ["", f"## {model}: verdicts vs the reference ({'recorded baseline, CPU float32' if ref == 'baseline' else ref + ' run of this check'})",
                  "", f"{n_diff} claim(s) differ from the reference.", "",
                  "| claim | reference | " + " | ".join(dts) + " | headline: reference / " + " / ".join(dts) + " | differs |",
                  "|---|---|" + "---|" * len(dts) + "---|---|"]
        for row in rows:
            heads = " / ".join([_fmt_head(row["ref_headline"])] + [_fmt_head(row[f"{d}_headline"]) for d in dts])
            lines.append(f"| {row['claim']} | {row['ref_verdict']} | " + " | ".join(str(row[d]) for d in dts)
                         + f" | {heads} | {'**' + ', '.join(row['differs']) + '**' if row['differs'] else ''} |")
    b = summary["bench"]
    lines += ["", "## Benchmark (bench/suite_vs_floor.py)", "", f"status: {b['status']}"
              + (f" — {b['why']}" if b.get("why") else "")]
    if b.get("command"):
        lines += [f"command: `{b['command']}` (rc {b.get('rc')}, {b.get('wall_s')} s)", "", "```", *b.get("output", []),
                  "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the check and write the summary; 0 when every run finished (findings do not fail the check),
    1 when a run timed out, could not be judged at all, or the models could not be prepared."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (dry mode: tiny models, 8 prompts)")
    ap.add_argument("--models", nargs="+", default=None, help="models (default: smollm2-135m minilm-l6 on cuda, "
                                                             "tiny-llama tiny-bert on cpu)")
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=("float32", "bfloat16", "float16"))
    ap.add_argument("--max-prompts", type=int, default=None, help="default: full corpus on cuda, 8 on cpu")
    ap.add_argument("--suite-args", default="", help="extra pytest arguments of every run, one string (e.g. '-m RN')")
    ap.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of the whole check (s)")
    ap.add_argument("--jobs", type=int, default=None, help="runs at a time (default 4 on cuda, 1 on cpu)")
    ap.add_argument("--bench", choices=("auto", "yes", "no"), default="auto",
                    help="run the benchmark: auto = on cuda only")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    on_cpu = a.device == "cpu"
    models = tuple(a.models or DEFAULT_MODELS["cpu" if on_cpu else "cuda"])
    dtypes = tuple(a.dtypes)
    max_prompts = a.max_prompts if a.max_prompts is not None else (8 if on_cpu else None)
    jobs = max(1, a.jobs or (1 if on_cpu else 4))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = a.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "reports" / f"gpu-check-{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    deadline = t_start + a.budget_s
    prepare = _prepare(models, deadline)
    runs = [RunResult(m, dt, a.device, str(out / "reports" / f"{m}-{dt}".replace("/", "_"))) for m in models
            for dt in dtypes]
    lock = threading.Lock()
    done: list[RunResult] = []

    def one(run: RunResult) -> None:
        run_suite(run, out=out, suite_args=shlex.split(a.suite_args), max_prompts=max_prompts, deadline=deadline,
                  threads=threads)
        with lock:
            done.append(run)
            print(f"[gpu_check] {run.model} {run.dtype}: rc {run.rc}{' (timed out)' if run.timed_out else ''}, "
                  f"{run.wall_s} s, {run.counts}", flush=True)

    if prepare["rc"] == 0:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, runs))
    want_bench = a.bench == "yes" or (a.bench == "auto" and not on_cpu)
    bench_res = bench(a.device, max_prompts=max_prompts, deadline=deadline, out=out) if want_bench else {
        "status": "skipped", "why": "not asked for (--bench auto runs it on cuda only)"}
    from lmfacts.baselines import load_all

    references = {b.name: reference_rows(b) for b in load_all() if b.model.get("dtype", "float32") == "float32"}
    summary = {
        "device": a.device, "gpu": _gpu_name(a.device), "started_utc": stamp, "budget_s": a.budget_s,
        "wall_s": round(time.monotonic() - t_start, 1), "jobs": jobs, "max_prompts": max_prompts,
        "dtypes": list(dtypes), "models": list(models), "prepare": prepare,
        "runs": [asdict(r) for r in runs], "comparison": compare(runs, references, dtypes), "bench": bench_res,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "summary.md").write_text(render_markdown(summary))
    (out / "logs.txt").write_text("\n\n".join(f"== {r.model} {r.dtype} (rc {r.rc})\n{r.tail}" for r in runs))
    print(render_markdown(summary))
    print(f"[gpu_check] summary: {out / 'summary.md'}")
    bad = prepare["rc"] != 0 or any(r.timed_out or not r.claims for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
