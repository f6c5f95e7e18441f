"""``report merge`` of two runs that loaded the same models (other claims on one model, two CI jobs), and
report.csv's revision column.

Input: two runs of the synthetic report, one holding RN-1, the other the rest, each listing gpt2 and
pythia-160m. Was: the merged models table listed each model twice with no column saying which run, and
report.csv wrote revision ``-`` for a model without one. Now: one entry per model with ``runs`` naming both
source runs (a ``run`` column in report.html), and an empty revision (NaN in pandas). Planted runs, no model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lmfacts.report.merge import merge_runs
from lmfacts.report.render import render_run
from lmfacts.report.store import RunStore
from lmfacts.report.synthetic import records, run_info


def _run(root: Path, run_id: str, keep, load_s: float) -> Path:
    run_dir = root / run_id
    store = RunStore(run_dir)
    info = run_info(run_id)
    for m in info["models"]:
        m["load_s"] = load_s  # each run timed its own load
    store.write_run_info(info)
    for rec in records():
        if keep(rec):
            store.append_result(rec)
    return run_dir


def test_a_model_two_runs_loaded_is_listed_once_naming_both(tmp_path: Path) -> None:
    a = _run(tmp_path, "20250101T000000Z-aaaaaaa", lambda r: r["claim"] == "RN-1", 1.0)
    b = _run(tmp_path, "20250102T000000Z-bbbbbbb", lambda r: r["claim"] != "RN-1", 2.0)
    out_dir = merge_runs([a, b], tmp_path / "merged")
    render_run(out_dir)
    report = json.loads((out_dir / "report.json").read_text())
    names = [m["name"] for m in report["models"]]
    assert names == ["gpt2", "pythia-160m"], names
    assert all(m["runs"] == [a.name, b.name] for m in report["models"]), report["models"]
    html = (out_dir / "report.html").read_text()
    models_table = html[html.index("<h2>Models</h2>"):]
    models_table = models_table[:models_table.index("</table>")]
    assert "<th>run</th>" in models_table and f"{a.name}, {b.name}" in models_table
    assert models_table.count("<td>gpt2</td>") == 1
    # a one-run report has no run column
    single = render_run(a)
    assert "<th>run</th>" not in Path(single["html"]).read_text()


def test_report_csv_leaves_a_missing_revision_empty(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "20250101T000000Z-aaaaaaa", lambda r: True, 1.0)
    text = Path(render_run(run_dir)["csv"]).read_text()
    header, first = text.splitlines()[:2]
    cols = header.split(",")
    assert first.split(",")[cols.index("revision")] == "", first
    df = pd.read_csv(render_run(run_dir)["csv"])
    assert df.revision.isna().all() and "-" not in set(df.revision.astype(str))
