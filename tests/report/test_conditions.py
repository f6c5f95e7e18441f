"""The report's Models section (lmfacts.report.conditions): one row per model however many loads it had, and every
note of its loading and probing once — the conditions a ✗ is read under (a head not in the checkpoint, no usable
BOS, prompts turned into unknown tokens) were only in run.json."""

from __future__ import annotations

from lmfacts.report.conditions import model_conditions
from lmfacts.report.markdown import render_markdown


def _report() -> dict:
    base = {"name": "m", "source": "local-dir", "architecture": "llama", "n_layers": 4, "d_model": 64,
            "device": "cpu", "dtype": "float32", "weight_format": "safetensors F32", "prepends_bos": False,
            "prepend_bos_policy": "never", "load_s": 1.25, "notes": ["no usable BOS: …"]}
    return {
        "run": {"id": "r"},
        "models": [{**base, "weight_processing": "raw"},
                   {**base, "weight_processing": "compat", "notes": ["no usable BOS: …", "compat: fold_ln off"]},
                   {**base, "name": "other", "notes": []}],
        "probes": {"m-cpu": {"unknown_content": "3 of 9 content tokens are the unknown token",
                             "unknown_content_share": 0.33},
                   "other-cpu": {"prompts_without_content": "1 of 3 prompts have no content token"}},
        "results": [],
    }


def test_one_row_per_model_with_its_notes_once() -> None:
    conds = {c.name: c for c in model_conditions(_report())}
    assert list(conds) == ["m", "other"]
    m = conds["m"]
    assert m.facts["processing"] == "raw, compat" and m.facts["shape"] == "4 × 64" and m.facts["BOS"] == "none (never)"
    assert m.notes == ["no usable BOS: …", "3 of 9 content tokens are the unknown token", "compat: fold_ln off"]
    assert conds["other"].notes == ["1 of 3 prompts have no content token"]


def test_markdown_shows_the_models_section() -> None:
    md = render_markdown(_report())
    section = md[md.index("## Models"):]
    assert "| m | local-dir | llama | 4 × 64 |" in section
    assert "- 3 of 9 content tokens are the unknown token" in section and "- compat: fold_ln off" in section
    assert model_conditions({"results": []}) == [] and "## Models" not in render_markdown({"run": {}, "results": []})
