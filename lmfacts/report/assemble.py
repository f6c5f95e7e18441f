"""Build the report dict of a run: run.json + the final record of every test + a summary."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from lmfacts.report.outcomes import OUTCOMES, claim_sort_key, model_name
from lmfacts.report.store import SCHEMA_VERSION, RunStore

RECORD_DEFAULTS: dict[str, Any] = {
    "claim": None,
    "title": None,
    "nodeid": None,
    "model": None,
    "device": None,
    "dtype": None,
    "outcome": None,
    "statistic": None,
    "measured": None,
    "expected": None,
    "tolerance": None,
    "source": None,
    "reason": None,
    "conventions": {},
    "robust": None,
    "witness": None,
    "control": None,
    "figures": [],
    "duration_s": None,
    "processing": None,
}


def record_key(record: dict[str, Any]) -> str:
    """Identity of a test across lines and runs: its nodeid, else ``claim|model``."""
    nodeid = record.get("nodeid")
    if nodeid:
        return str(nodeid)
    return f"{record.get('claim')}|{record.get('model')}"


def normalise_record(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with every contract field present (missing ones get their default)."""
    out = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
           for k, v in RECORD_DEFAULTS.items()}
    out.update(record)
    if out["figures"] is None:
        out["figures"] = []
    if out["conventions"] is None:
        out["conventions"] = {}
    if out["outcome"] not in OUTCOMES:
        warnings.warn(f"record {record_key(record)}: unknown outcome {out['outcome']!r}", RuntimeWarning,
                      stacklevel=2)
    return out


def final_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per test: a later line for the same nodeid supersedes an earlier one.

    The result is sorted by claim (RN, BF, RS, numeric within), model, then nodeid.
    """
    latest: dict[str, dict[str, Any]] = {}
    for rec in records:
        latest[record_key(rec)] = normalise_record(rec)
    return sorted(
        latest.values(),
        key=lambda r: (claim_sort_key(str(r.get("claim") or "")), model_name(r), str(r.get("nodeid") or "")),
    )


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of outcomes overall and per model (every outcome key present, zeros included)."""
    counts = Counter(str(r.get("outcome")) for r in results)
    by_model: dict[str, dict[str, int]] = {}
    for r in results:
        per = by_model.setdefault(model_name(r), {o: 0 for o in OUTCOMES})
        per[str(r.get("outcome"))] = per.get(str(r.get("outcome")), 0) + 1
    total = {o: counts.get(o, 0) for o in OUTCOMES}
    total.update({k: v for k, v in counts.items() if k not in total})
    return {"counts": total, "by_model": by_model, "n_results": len(results)}


def model_order(report: dict[str, Any]) -> list[str]:
    """Model names in run.json order, then any other model seen in the results."""
    names: list[str] = []
    for m in report.get("models") or []:
        name = m.get("name") if isinstance(m, dict) else None
        if name and name not in names:
            names.append(str(name))
    for r in report.get("results") or []:
        name = model_name(r)
        if name not in names:
            names.append(name)
    return names


def claim_order(report: dict[str, Any]) -> list[str]:
    """Claim ids present in the results, in catalogue order."""
    claims = {str(r.get("claim") or "?") for r in report.get("results") or []}
    return sorted(claims, key=claim_sort_key)


def partial_run(run: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Why the report holds fewer results than the run selected, or None for a run that finished.

    Read from run.json's ``run.completion`` (written by the plugin once the tests are collected):
    ``status`` ``interrupted`` (SIGINT / SIGTERM; ``signal``) or ``running`` (the process ended
    without finishing: killed, or still running), the selected test ids and those without a result.
    A run.json without ``completion`` (older runs, merged reports) says nothing and gives None.
    """
    c = run.get("completion") if isinstance(run, dict) else None
    if not isinstance(c, dict):
        return None
    done = {r.get("nodeid") for r in results}
    selected = list(c.get("selected") or [])
    not_run = [i for i in selected if i not in done]
    status = c.get("status")
    if status == "finished" and not not_run:
        return None
    n_selected = c.get("n_selected", len(selected))
    how = {"interrupted": f"was interrupted ({c.get('signal') or 'SIGINT'})",
           "running": "did not finish (killed, or still running)"}.get(str(status), str(status))
    text = (f"partial report: the run {how}; {len(results)} of {n_selected} selected tests have a result, "
            f"{len(not_run)} did not run")
    if not_run:
        text += " (e.g. " + ", ".join(i.rsplit("::", 1)[-1] for i in not_run[:3]) + ("…" if len(not_run) > 3 else "") + ")"
    return {"status": status, "signal": c.get("signal"), "n_selected": n_selected, "n_results": len(results),
            "not_run": not_run, "text": text}


def build_report(run_info: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The report dict from a run.json object and the raw result lines."""
    report = dict(run_info)
    report.setdefault("schema_version", SCHEMA_VERSION)
    report.setdefault("run", {})
    report.setdefault("models", [])
    results = final_records(records)
    report["results"] = results
    report["summary"] = summarise(results)
    partial = partial_run(report["run"], results)
    if partial is not None:
        report["partial"] = partial
    from lmfacts.report.trajectory import trajectories

    if trajectory := trajectories(results):  # a checkpoint sweep: values against step, emergence steps
        report["trajectories"] = trajectory
    return report


def assemble_report(run_dir: str | Path) -> dict[str, Any]:
    """Read ``run_dir``'s run.json and results.jsonl and build the report dict.

    A missing run.json (a run killed before it was written) gives empty run info and a
    warning; a directory with neither file raises FileNotFoundError.
    """
    store = RunStore(run_dir)
    if not store.run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {store.run_dir}")
    if store.run_json.exists():
        info = store.read_run_info()
    elif store.results_jsonl.exists():
        warnings.warn(f"{store.run_json} is missing; rendering results only", RuntimeWarning, stacklevel=2)
        info = {"run": {"id": store.run_dir.name}, "models": []}
    else:
        raise FileNotFoundError(f"{store.run_dir} has neither run.json nor results.jsonl")
    return build_report(info, store.read_results())
