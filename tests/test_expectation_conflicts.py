"""Two expectation entries that always apply together are a usage error when the files load, not an E per test.

Two entries of one group (the user's ``--expectations`` files; or the built-in files / ``$LMFACTS_EXPECTATIONS_DIR``)
for the same claim whose selectors coincide at one level (``models`` / ``architectures`` lists sharing a name,
the same predicates, both ``default = true``) leave :func:`lmfacts.expectations.resolve` no way to choose, on
every model they name. They used to surface as an error (E) on each affected test once its model had loaded;
now :func:`lmfacts.expectations.load_all` rejects them, naming the file, both entries (index and line), the
claim, the level and the fix. A user's entry at the level of a built-in one still overrides it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lmfacts.expectations import ExpectationFileError, ModelFacts, load_all, resolve
from tests.helpers import run_pytest

ENTRY = ('\n[[expectation]]\nclaim = "{claim}"\nkind = "published"\nsource = "{source}"\nmatch = {{ {match} }}\n'
         'params = {{ {params} }}\n')


def _file(path: Path, *entries: tuple[str, str, str, str]) -> Path:
    """Write ``schema = 1`` and one entry per (claim, source, match, params)."""
    path.write_text("schema = 1\n" + "".join(ENTRY.format(claim=c, source=s, match=m, params=p)
                                             for c, s, m, p in entries), encoding="utf-8")
    return path


def _base(tmp_path: Path) -> Path:
    """A built-in directory with one RN-1 entry by name, at the level the users' entries use."""
    d = tmp_path / "builtin"
    d.mkdir()
    _file(d / "rn.toml", ("RN-1", "paper", 'models = ["tiny-llama"]', "rate_tol = 0.01"))
    return d


def test_two_user_entries_for_one_model_are_a_usage_error_at_collection(tmp_path: Path) -> None:
    """The tester's file: a real --collect-only run stops with a usage error naming both entries."""
    dup = _file(tmp_path / "dup.toml",
                ("RN-1", "run A", 'models = ["tiny-llama"]', "min_r2 = 0.8"),
                ("RN-1", "run B", 'models = ["tiny-llama", "tiny-gpt2"]', "min_r2 = 0.9"))
    proc, seconds = run_pytest("claims/", "-k", "RN-1", "--collect-only", "-q", "--model", "tiny-llama",
                               "--expectations", str(dup), report_dir=tmp_path / "r")
    err = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, err[-3000:]
    assert seconds < 10, seconds
    for needle in (str(dup.resolve()), "expectation[0] (line 3)", "expectation[1] (line 10)", "RN-1",
                   "tiny-llama", "same level (models)", "remove one"):
        assert needle in err, (needle, err[-3000:])
    assert "Traceback" not in err, err[-3000:]


@pytest.mark.parametrize(("first", "second", "needles"), [
    ('models = ["a", "b"]', 'models = ["b", "c"]', ["for b at the same level (models)"]),
    ('architectures = ["LlamaForCausalLM"]', 'architectures = ["LlamaForCausalLM"]',
     ["for LlamaForCausalLM at the same level (architectures)"]),
    ('encoder = true, normalization = "LN"', 'normalization = "LN", encoder = true',
     ["same level (predicate)"]),
    ("default = true", "default = true", ["for every model at the same level (default)"]),
], ids=["models", "architectures", "predicate", "default"])
def test_overlapping_selectors_in_two_user_files_name_both(tmp_path: Path, first: str, second: str,
                                                           needles: list[str]) -> None:
    a = _file(tmp_path / "a.toml", ("RN-3", "mine", first, "rate_tol = 0.1"))
    b = _file(tmp_path / "b.toml", ("RN-1", "other claim", first, ""), ("RN-3", "theirs", second, "rate_tol = 0.2"))
    with pytest.raises(ExpectationFileError) as info:
        load_all(_base(tmp_path), extra=[a, b])
    text = str(info.value)
    for needle in (f"{a.resolve()}: expectation[0] (line 3)", f"{b.resolve()}: expectation[1] (line 10)",
                   "both set RN-3", *needles):
        assert needle in text, (needle, text)


@pytest.mark.parametrize(("first", "second"), [
    ('models = ["a"]', 'models = ["b"]'),
    ('architectures = ["GPT2LMHeadModel"]', 'architectures = ["LlamaForCausalLM"]'),
    ("encoder = true", "encoder = false"),
    ('models = ["a"]', "default = true"),  # different levels: the more specific one wins
])
def test_entries_that_never_apply_together_load(tmp_path: Path, first: str, second: str) -> None:
    mine = _file(tmp_path / "mine.toml", ("RN-3", "x", first, ""), ("RN-3", "y", second, ""))
    assert len(load_all(_base(tmp_path), extra=[mine])) == 3


def test_a_user_entry_still_overrides_a_built_in_one_of_its_level(tmp_path: Path) -> None:
    base = _base(tmp_path)
    mine = _file(tmp_path / "mine.toml", ("RN-1", "our lab", 'models = ["tiny-llama"]', "rate_tol = 0.5"))
    facts = ModelFacts(names=("tiny-llama",), architecture="LlamaForCausalLM", is_encoder=False,
                       normalization="RMS", quantized=False)
    got = resolve(load_all(base, extra=[mine]), "RN-1", facts)
    assert got.params["rate_tol"] == 0.5 and got.source == "our lab"


def test_the_same_file_given_as_base_and_user_overrides_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LMFACTS_EXPECTATIONS_DIR=DIR --expectations DIR: each entry overrides its own copy, no conflict."""
    base = _base(tmp_path)
    monkeypatch.setenv("LMFACTS_EXPECTATIONS_DIR", str(base))
    assert len(load_all(extra=[base])) == 2


def test_duplicates_in_an_expectations_dir_are_an_error_too(tmp_path: Path) -> None:
    base = _base(tmp_path)
    _file(base / "more.toml", ("RN-1", "again", 'models = ["tiny-llama"]', "rate_tol = 0.02"))
    with pytest.raises(ExpectationFileError, match=r"more\.toml: expectation\[0\] \(line 3\) and .*rn\.toml: "
                                                   r"expectation\[0\] \(line 3\) both set RN-1 for tiny-llama"):
        load_all(base)


def test_the_built_in_files_hold_no_conflicting_entries() -> None:
    assert load_all()
