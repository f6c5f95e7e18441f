"""What a reader needs to know about each model a run measured, beside its verdicts: how it was loaded and
what lmfacts noticed while loading and probing it (a head that was not in the checkpoint, a tokenizer that has
no usable BOS, prompts the tokenizer turned into special tokens or unknown tokens, a compat processing the
architecture does not support). Those notes live in ``run.json`` (``models[].notes``, ``probes``); a ✗ read
without them may be a finding about the tokenizer or the loading rather than the model, so report.md and
report.html show them in a Models section (:func:`model_conditions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: ``probes[<target id>]`` keys that hold a sentence for the reader (written by :mod:`lmfacts.session`).
PROBE_NOTE_KEYS: tuple[str, ...] = ("prompts_without_content", "unknown_content")


@dataclass
class ModelConditions:
    """One model of a run: ``facts`` (field → text, in :data:`FACT_FIELDS` order) and its ``notes``, each once."""

    name: str
    facts: dict[str, str]
    notes: list[str] = field(default_factory=list)


#: The columns of the Models table: label → how to read it from a ``models[]`` entry.
#: No timings (load seconds are in run.json): the rendered report of the same inputs is the same text.
FACT_FIELDS: tuple[str, ...] = ("source", "architecture", "shape", "device", "dtype", "weights", "BOS", "processing")


def _facts(m: dict[str, Any]) -> dict[str, str]:
    bos = m.get("prepends_bos")
    policy = m.get("prepend_bos_policy")
    shape = (f"{m.get('n_layers')} × {m.get('d_model')}" if m.get("n_layers") is not None else "")
    return {
        "source": str(m.get("source") or "") + (f" @{m['revision']}" if m.get("revision") else ""),
        "architecture": str(m.get("architecture") or ""),
        "shape": shape,
        "device": str(m.get("device") or ""),
        "dtype": str(m.get("dtype") or ""),
        "weights": str(m.get("weight_format") or m.get("quantization") or ""),
        "BOS": ("" if bos is None else ("prepended" if bos else "none"))
               + (f" ({policy})" if policy and policy != "auto" else ""),
        "processing": str(m.get("weight_processing") or ""),
    }


def _probe_ids(m: dict[str, Any]) -> list[str]:
    """The ``probes`` keys a model entry's target may have (:attr:`lmfacts.options.Target.id`)."""
    name, device, rev = str(m.get("name") or ""), str(m.get("device") or ""), m.get("revision")
    label = f"{name}@{rev}" if rev else name
    return [f"{label}-{device}".replace("/", "_")]


def model_conditions(report: dict[str, Any]) -> list[ModelConditions]:
    """One :class:`ModelConditions` per model name, in the order of ``report["models"]``: the facts of its first
    entry (processings joined: ``raw, compat``) and the notes of every entry (the raw and compat loads, every
    device) plus the probe notes (:data:`PROBE_NOTE_KEYS`), each note once. Raises nothing; a report without
    models gives ``[]``."""
    out: dict[str, ModelConditions] = {}
    probes = report.get("probes") if isinstance(report.get("probes"), dict) else {}
    for m in report.get("models") or []:
        if not isinstance(m, dict):
            continue
        name = str(m.get("name") or "?")
        c = out.get(name)
        if c is None:
            c = out[name] = ModelConditions(name, _facts(m))
        else:
            for key, value in _facts(m).items():  # several loads of one model: list the values that differ
                seen = [v.strip() for v in c.facts[key].split(",")]
                if value and value not in seen and key in ("processing", "device", "dtype", "source"):
                    c.facts[key] = f"{c.facts[key]}, {value}" if c.facts[key] else value
        bos_note = m.get("bos_note")
        notes = [*(m.get("notes") or []), *([bos_note] if bos_note else [])]
        for pid in _probe_ids(m):
            entry = probes.get(pid) or {}
            notes += [str(entry[k]) for k in PROBE_NOTE_KEYS if entry.get(k)]
        for note in notes:
            if note and str(note) not in c.notes:
                c.notes.append(str(note))
    return list(out.values())
