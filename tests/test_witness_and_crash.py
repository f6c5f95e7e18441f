"""Witnesses shrink to a short prompt; a run killed midway leaves results that render."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO, load_report, run_pytest

PLANTED_CLAIM = '''
import os
from hypothesis import given
from lmfacts.claims import claim
from lmfacts.prompts.corpus import load_corpus_file
from lmfacts.prompts.strategies import natural_prompts

CORPUS = load_corpus_file(os.environ["PLANTED_CORPUS"])


@claim("ZZ-1", title="planted: fails on prompts that mention a zebra", source="test", processing="raw")
@given(prompt=natural_prompts(CORPUS))
def test_zz1_planted(ctx, prompt):
    """Planted claim: one forward pass per example; fails exactly when the prompt contains 'zebra'."""
    bridge = ctx.model().bridge
    tokens = bridge.to_tokens(prompt)
    logits = bridge(tokens)
    value = float(logits[0, -1].abs().max())
    ctx.observe(value)
    ctx.witness(prompt, tokens[0].tolist(), value)
    ctx.check("zebra" not in prompt.lower(), "planted failure: the prompt mentions a zebra",
              zebra_count=float(prompt.lower().count("zebra")))
'''

SENTENCES = [
    "The quarterly figures were published on Monday and showed a small rise in exports.",
    "A recipe for bread needs flour, water, salt and a great deal of patience.",
    "The river rose steadily through the night, and by dawn the lower road was closed.",
    "Our committee met twice in March to review the draft budget for the library.",
    "At the far end of the savanna a zebra lifted its head and watched the jeep pass.",
    "The museum's new wing shows a zebra skeleton beside the fossils of early horses.",
    "Children in the reading group voted for a story about a lighthouse keeper.",
    "Rain is expected over the northern hills with clearer skies by the afternoon.",
]


def test_failing_per_prompt_claim_reports_a_short_witness_with_the_word(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": s, "genre": "test"}) + "\n" for s in SENTENCES))
    claims = tmp_path / "planted"
    claims.mkdir()
    (claims / "test_zz_planted.py").write_text(PLANTED_CLAIM)
    report_dir = tmp_path / "reports"
    proc, _ = run_pytest(str(claims), "--model", "tiny-gpt2", "--hypothesis-profile", "dev", "-q",
                         "--rootdir", str(REPO), report_dir=report_dir, env={"PLANTED_CORPUS": str(corpus), "LMFACTS_EXPECTATIONS_DIR": str(tmp_path)})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    (record,) = [r for r in load_report(report_dir)["results"] if r["claim"] == "ZZ-1"]
    assert record["outcome"] == "failed"
    witness = record["witness"]
    assert witness is not None and "zebra" in witness["text"].lower()
    shortest_zebra = min(len(s) for s in SENTENCES if "zebra" in s)
    assert len(witness["text"]) < shortest_zebra / 2, witness["text"]
    assert witness["tokens"] and isinstance(witness["value"], float)


def test_killed_run_leaves_results_that_render(tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    cmd = [sys.executable, "-m", "pytest", "claims/", "-k", "RN-1", "--model", "tiny-gpt2", "--model", "tiny-bert",
           "--model", "tiny-llama", "--model", "tiny-neox", "--max-prompts", "8", "--report-dir", str(report_dir),
           "-p", "no:cacheprovider", "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    results: list[Path] = []
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            results = list(report_dir.glob("*/results.jsonl"))
            if results and len(results[0].read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert results, "the run wrote no results.jsonl before it was killed"
    run_dir = results[0].parent
    assert not (run_dir / "report.json").exists() or proc.returncode == 0
    n_lines = len(results[0].read_text().splitlines())
    out = subprocess.run([sys.executable, "-m", "lmfacts", "report", "render", str(run_dir)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert len(report["results"]) >= min(n_lines, 2)
    assert (run_dir / "report.md").read_text().count("RN-1") >= 1
    assert (run_dir / "report.html").exists()
