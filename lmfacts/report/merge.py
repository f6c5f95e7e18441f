"""``python -m lmfacts report merge DIR… --out DIR``: one replication report from several runs.

The CI fan-out (one nightly job per model) gives one run directory per job; merging them gives the
report a single run over all those models would have given. The merged run is an ordinary run
directory, ``OUT/<run-id>/`` with ``run.json`` and ``results.jsonl``, rendered by the same code as any
run (:func:`lmfacts.report.render.render_run` → :func:`lmfacts.report.assemble.build_report`), so its
matrix, per-model sections, plots, trajectories and summary are built exactly as for one run.

Runs merge only when their numbers are comparable: the same lmfacts version, the same corpus
(sha256) and the same number of probe prompts (``--max-prompts``); anything else is a
:class:`MergeError` listing each difference and the run it comes from. Two runs that both measured
one test (the same claim, model, revision and device: the same test id) are refused too — which
one would count is not for the merge to decide.

``run.json`` of the merged run: the first run's, with ``id``, ``created_utc``, ``command`` and
``argv`` of the merge; ``options.models`` / ``devices`` / ``revisions`` the union over the runs (in
argument order); ``models`` one entry per loaded model with ``runs``, the source runs that loaded it
(:func:`merged_models`); ``probes`` concatenated; ``hypothesis.replay`` the first run's replay
command with every run's ``--model`` options when the runs' commands differ only in their models
(else None: each run's replay command stays in ``merged_from``); and ``merged_from``, one entry per
source run (its id, directory, creation time, command, models, and any option, version or Hypothesis
setting in which it differs from the merged run).
"""

from __future__ import annotations

import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lmfacts.jsonsafe import dumps
from lmfacts.report.paths import REPORT_JSON, RUN_JSON, is_run_id, new_run_id
from lmfacts.report.store import RunStore, write_text_atomic

__all__ = ["MergeError", "SourceRun", "merge_runs", "merged_from_text", "merged_run_info", "read_source"]

#: run-level facts that must agree for numbers to be comparable: (label, getter on run.json)
MUST_AGREE: tuple[tuple[str, Any], ...] = (
    ("lmfacts version", lambda info: (info.get("run") or {}).get("lmfacts_version")),
    ("corpus sha256", lambda info: ((info.get("run") or {}).get("corpus") or {}).get("sha256")),
    ("probe prompts (--max-prompts)",
     lambda info: ((info.get("run") or {}).get("corpus") or {}).get("n_probe_prompts")),
)
#: options that name what a run measured (unioned by the merge) or where it wrote (the merge's own)
UNIONED_OPTIONS = ("models", "devices", "revisions", "revision", "report_dir")


class MergeError(ValueError):
    """Runs that cannot be merged (different lmfacts version / corpus, a test measured twice, no run)."""


class SourceRun:
    """One run to merge: its directory, ``run.json`` content and raw result records."""

    def __init__(self, path: Path, info: dict[str, Any], records: list[dict[str, Any]]) -> None:
        self.path, self.info, self.records = path, info, records

    @property
    def run(self) -> dict[str, Any]:
        """The ``run`` object of its ``run.json``."""
        return self.info.get("run") or {}


def read_source(path: str | Path) -> SourceRun:
    """The run in ``path``: a run directory (``run.json`` + ``results.jsonl``), a directory holding only a
    ``report.json``, a ``report.json`` file, or a report directory (its latest run, said on stderr).

    Raises :class:`MergeError` when ``path`` holds no run.
    """
    from lmfacts.report.cli import UsageError, read_report_json, resolve_run  # cli imports this module: late

    try:
        p = resolve_run(str(path))  # a file, a run directory, or a report directory's latest run
        if p.is_file():
            if not p.name.endswith(".json"):
                raise MergeError(f"{p}: not a run directory or a report.json")
            return _from_report_json(p, read_report_json(p))
        if (p / RUN_JSON).is_file():
            store = RunStore(p)
            return SourceRun(p, store.read_run_info(), store.read_results())
        if (p / REPORT_JSON).is_file():
            return _from_report_json(p, read_report_json(p / REPORT_JSON))
    except UsageError as exc:  # no such run, or a report.json that is not one (not JSON, no results)
        raise MergeError(str(exc)) from None
    raise MergeError(f"{p} has results but no {RUN_JSON}: render or re-run it before merging")


def _from_report_json(path: Path, report: dict[str, Any]) -> SourceRun:
    if not isinstance(report, dict) or "results" not in report:
        raise MergeError(f"{path}: not an lmfacts report.json (no results)")
    info = {k: v for k, v in report.items() if k not in ("results", "summary", "trajectories")}
    return SourceRun(path, info, list(report.get("results") or []))


def _label(src: SourceRun) -> str:
    return f"{src.path} (run {src.run.get('id', '?')})"


def check_mergeable(sources: list[SourceRun]) -> None:
    """Raise :class:`MergeError` listing every run-level difference of :data:`MUST_AGREE` and every test
    measured by more than one run; return None when the runs can be merged.

    The same run given twice (one path twice, its directory and its ``report.json``, or two copies with one
    run id) is refused first, with that said: it is not two runs that "differ" in every test."""
    by_run: dict[str, list[SourceRun]] = {}
    for s in sources:
        key = str(s.run.get("id") or "") or str(s.path.resolve().parent if s.path.is_file() else s.path.resolve())
        by_run.setdefault(key, []).append(s)
    repeated = {k: v for k, v in by_run.items() if len(v) > 1}
    if repeated:
        raise MergeError("the same run is given more than once: " + "; ".join(
            f"run {k} as {', '.join(str(s.path) for s in v)}" for k, v in repeated.items())
            + ". Merge distinct runs (one per model, revision or device).")
    problems: list[str] = []
    for what, get in MUST_AGREE:
        values = [get(s.info) for s in sources]
        if len({str(v) for v in values}) > 1:
            problems.append(f"{what}: " + "; ".join(f"{v} in {_label(s)}" for v, s in zip(values, sources, strict=True)))
    seen: dict[str, SourceRun] = {}
    twice: dict[tuple[str, str], set[str]] = {}
    for s in sources:
        for key in {str(r.get("nodeid") or f"{r.get('claim')}|{r.get('model')}") for r in s.records}:
            if key in seen and seen[key] is not s:
                twice.setdefault((str(seen[key].path), str(s.path)), set()).add(key)
            seen.setdefault(key, s)
    by_path = {str(s.path): s for s in sources}
    for (a, b), keys in twice.items():
        example = sorted(keys)[0]
        clash = _same_label_other_model(by_path[a], by_path[b])
        if clash:  # two different models that happen to show under one name (runA/step-5, runB/step-5)
            label, pa, pb = clash
            problems.append(f"{a} and {b} measured two different models under the same name {label!r} ({pa} and "
                            f"{pb}): run them in one pytest run, where same-named models get distinct names, or "
                            "give their directories distinct names")
            continue
        problems.append(f"{len(keys)} test(s) measured by both {a} and {b}, e.g. {example}: merge runs of "
                        "different models, revisions or devices")
    if problems:
        raise MergeError("cannot merge these runs; they differ in\n  " + "\n  ".join(problems))


def _same_label_other_model(a: SourceRun, b: SourceRun) -> tuple[str, str, str] | None:
    """``(name, a's model, b's model)`` for a model name both runs measured that stands for different models in
    them (different ``hf_id_or_path`` in their ``run.json`` model tables); None when there is none."""
    def paths(src: SourceRun) -> dict[str, str]:
        return {str(m.get("name")): str(m.get("hf_id_or_path")) for m in (src.info.get("models") or [])
                if isinstance(m, dict) and m.get("name") and m.get("hf_id_or_path")}

    pa, pb = paths(a), paths(b)
    shared = {str(r.get("model")) for r in a.records} & {str(r.get("model")) for r in b.records}
    for name in sorted(shared):
        if name in pa and name in pb and pa[name] != pb[name]:
            return name, pa[name], pb[name]
    return None


def _union(values: list[list[Any]]) -> list[Any]:
    out: list[Any] = []
    for vs in values:
        out += [v for v in vs if v not in out]
    return out


def _strip_models(tokens: list[str]) -> tuple[list[str], list[tuple[str, ...]], int]:
    """(``tokens`` without ``--model`` options, each ``--model`` option's tokens, where the first one stood).

    ``--model NAME`` takes the directories that follow it too (the shell's expansion of
    ``--model ckpts/step-*``, :func:`lmfacts.options.shell_expanded_models`).
    """
    rest: list[str] = []
    groups: list[tuple[str, ...]] = []
    at: int | None = None
    i = 0
    while i < len(tokens):
        t = tokens[i]
        j = i + 2 if t == "--model" else i + 1 if t.startswith("--model=") else None
        if j is None:
            rest.append(t)
            i += 1
            continue
        while t == "--model" and j < len(tokens) and not tokens[j].startswith("-") and Path(tokens[j]).is_dir():
            j += 1
        at = len(rest) if at is None else at
        groups.append(tuple(tokens[i:j]))
        i = j
    return rest, groups, len(rest) if at is None else at


def _without_report_dir(tokens: list[str]) -> list[str]:
    """``tokens`` without ``--report-dir DIR`` (each CI job writes its own; the replay keeps the first's)."""
    out: list[str] = []
    skip = False
    for t in tokens:
        if skip:
            skip = False
        elif t == "--report-dir":
            skip = True
        elif not t.startswith("--report-dir="):
            out.append(t)
    return out


def merged_replay(replays: list[str | None]) -> str | None:
    """One replay command for the merged run: the first run's, with every run's ``--model`` options where
    its first stood, when the runs' replay commands differ only in their models (and interpreter and
    ``--report-dir``);
    else None (e.g. a randomised profile: each job drew its own seed)."""
    if not replays or any(not r for r in replays):
        return None
    split = [shlex.split(str(r)) for r in replays]
    parts = [_strip_models(t[1:]) for t in split]
    if any(_without_report_dir(rest) != _without_report_dir(parts[0][0]) for rest, _, _ in parts[1:]):
        return None
    groups = _union([list(g) for _, g, _ in parts])
    rest, _, at = parts[0]
    return shlex.join([split[0][0], *rest[:at], *(tok for g in groups for tok in g), *rest[at:]])


def merged_from_text(run: dict[str, Any]) -> str | None:
    """``merged from 2 runs: <id> (model, …), <id> (…)`` for a merged run's ``run.json`` ``run`` object; None
    for a run that was not merged (what both report renderers put in their header)."""
    sources = run.get("merged_from") or []
    if not sources:
        return None
    parts = []
    for s in sources:
        models = ", ".join(str(m) for m in (s.get("models") or []))
        parts.append(f"{s.get('id') or '?'}" + (f" ({models})" if models else ""))
    return f"merged from {len(sources)} runs: " + "; ".join(parts)


#: Fields of a ``models`` entry that time one load on one machine, not what was loaded.
MODEL_TIMINGS = ("load_s", "compat_s", "convert_s")


def merged_models(sources: list[SourceRun]) -> list[dict[str, Any]]:
    """The merged run's ``models``: each source run's entries in argument order, one entry per loaded model
    (name, path, revision, device, dtype, processing, …: every field but :data:`MODEL_TIMINGS`), with ``runs``,
    the ids of the source runs that loaded it (a source that is itself a merge passes its own ``runs`` on).
    Two runs of other claims on one model (``-m RN`` and ``-m BF`` jobs) list it once, ``runs`` naming both;
    the first run's timings are kept."""
    import json

    out: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    for s in sources:
        rid = str(s.run.get("id") or s.path.name)
        for m in s.info.get("models") or []:
            if not isinstance(m, dict):
                continue
            runs = [str(r) for r in m.get("runs") or []] or [rid]
            key = json.dumps({k: v for k, v in m.items() if k not in MODEL_TIMINGS and k != "runs"},
                             sort_keys=True, default=str)
            if key in seen:
                seen[key]["runs"] += [r for r in runs if r not in seen[key]["runs"]]
                continue
            seen[key] = {**m, "runs": runs}
            out.append(seen[key])
    return out


def merged_run_info(sources: list[SourceRun], run_id: str, out_dir: Path, command: str) -> dict[str, Any]:
    """The ``run.json`` content of the merged run (see the module docstring). Raises nothing."""
    import copy

    first = sources[0]
    info = copy.deepcopy(first.info)
    run = info.setdefault("run", {})
    run.update(id=run_id, created_utc=datetime.now(UTC).isoformat(timespec="seconds"), command=command,
               argv=list(sys.argv))
    options = run.setdefault("options", {})
    for key in ("models", "devices", "revisions"):
        options[key] = _union([list((s.run.get("options") or {}).get(key) or []) for s in sources])
    options["revision"] = options["revisions"][0] if len(options["revisions"]) == 1 else None
    options["report_dir"] = str(out_dir)
    run["devices"] = _union([list(s.run.get("devices") or []) for s in sources])
    hyp = run.get("hypothesis")
    if isinstance(hyp, dict) and "replay" in hyp:
        hyp["replay"] = merged_replay([(s.run.get("hypothesis") or {}).get("replay") for s in sources])
    info["models"] = merged_models(sources)
    info["probes"] = {k: v for s in sources for k, v in (s.info.get("probes") or {}).items()}
    merged_from = []
    for s in sources:
        entry: dict[str, Any] = {"id": s.run.get("id"), "dir": str(s.path), "created_utc": s.run.get("created_utc"),
                                 "command": s.run.get("command"),
                                 "models": (s.run.get("options") or {}).get("models")}
        differs = {k: v for k, v in (s.run.get("options") or {}).items()
                   if k not in UNIONED_OPTIONS and v != options.get(k)}
        for key in ("versions", "hypothesis", "platform"):
            if s.run.get(key) != first.run.get(key) or (key == "hypothesis" and hyp and hyp.get("replay") is None):
                differs[key] = s.run.get(key)
        if differs:
            entry["differs"] = differs
        merged_from.append(entry)
    run["merged_from"] = merged_from
    completion = _merged_completion([s.run.get("completion") for s in sources])
    if completion is None:
        run.pop("completion", None)
    else:
        run["completion"] = completion
    return info


def _merged_completion(parts: list[Any]) -> dict[str, Any] | None:
    """The runs' ``run.completion`` together: every selected test, ``finished`` only if every run finished
    (else the first other status and its signal). None when a run has none (it cannot say what it selected)."""
    if not parts or not all(isinstance(c, dict) for c in parts):
        return None
    selected = sorted({i for c in parts for i in c.get("selected") or []})
    unfinished = [c for c in parts if c.get("status") != "finished"]
    out: dict[str, Any] = {"status": unfinished[0].get("status") if unfinished else "finished",
                           "n_selected": len(selected), "selected": selected}
    if unfinished and unfinished[0].get("signal"):
        out["signal"] = unfinished[0]["signal"]
    if all("not_run" in c for c in parts):
        out["not_run"] = sorted({i for c in parts for i in c["not_run"]})
    return out


def merge_runs(paths: list[str | Path], out: str | Path, *, now: datetime | None = None) -> Path:
    """Merge the runs in ``paths`` into a new run directory under the report directory ``out``; return it.

    The new directory (``out/<run-id>``; the run id is :func:`lmfacts.report.paths.new_run_id` with the
    runs' common git sha, else ``merged``) gets ``run.json`` (:func:`merged_run_info`) and
    ``results.jsonl`` (every run's records, in argument order); the caller renders it
    (:func:`lmfacts.report.render.render_run`). Raises :class:`MergeError` for fewer than two runs,
    runs that are not comparable (:func:`check_mergeable`), or an existing run directory of that id.
    """
    if len(paths) < 2:
        raise MergeError("report merge needs at least two runs")
    sources = [read_source(p) for p in paths]
    check_mergeable(sources)
    shas = {str(s.run.get("id") or "").rsplit("-", 1)[-1].split(".")[0] for s in sources}  # no '.2' suffix
    sha = shas.pop() if len(shas) == 1 and all(is_run_id(str(s.run.get("id") or "")) for s in sources) else "merged"
    run_id = new_run_id(now, git_sha=sha)
    out_dir = Path(out)
    run_dir = out_dir / run_id
    if run_dir.exists():
        raise MergeError(f"{run_dir} already exists: merge into another --out, or wait a second")
    command = shlex.join(["python", "-m", "lmfacts", "report", "merge", *map(str, paths), "--out", str(out)])
    info = merged_run_info(sources, run_id, out_dir, command)
    store = RunStore(run_dir)
    store.write_run_info(info)
    write_text_atomic(store.results_jsonl, "".join(dumps(r) + "\n" for s in sources for r in s.records))
    return run_dir


def cmd_merge(args: Any) -> int:
    """``report merge``: merge, render, print the new run directory's report paths; 2 on a merge error."""
    from lmfacts.report.cli import UsageError
    from lmfacts.report.render import render_run

    try:
        run_dir = merge_runs(args.runs, args.out)
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    for path in render_run(run_dir).values():
        print(path)
    return 0


def add_merge_command(sub: Any) -> None:
    """Register ``report merge`` on the ``report`` subparsers (:data:`lmfacts.report.cli.REPORT_COMMANDS`)."""
    p = sub.add_parser(
        "merge", help="combine runs (e.g. one CI job per model) into one report",
        description="Each RUN is a run directory, a report.json, or a report directory (its latest run). The runs "
                    "must share the lmfacts version, corpus and probe prompt count and measure different tests "
                    "(models, revisions, devices). The merged run is written to OUT/<run-id>/ and rendered like "
                    "any run.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories to merge (at least two)")
    p.add_argument("--out", required=True, metavar="DIR", help="report directory for the merged run")
    p.set_defaults(func=cmd_merge)
