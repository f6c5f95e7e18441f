"""Tests for the built-in prompt corpus and the prompt-file loaders."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from lmfacts.prompts import corpus as corpus_module
from lmfacts.prompts.corpus import (
    BUILTIN_CORPUS_PATH,
    Corpus,
    CorpusError,
    CorpusFileNotFoundError,
    Prompt,
    corpus_hash,
    load_builtin_corpus,
    load_corpus_file,
)

REQUIRED_GENRES = {
    "news",
    "encyclopedic",
    "fiction",
    "dialogue",
    "instructions",
    "list",
    "table",
    "code",
    "maths",
    "non-english",
    "short",
    "long",
}


@pytest.fixture(scope="module")
def builtin() -> Corpus:
    """The built-in corpus."""
    return load_builtin_corpus()


# --- the built-in corpus -------------------------------------------------------------------------


def test_builtin_corpus_size_and_genres(builtin: Corpus) -> None:
    assert len(builtin) >= 220
    counts = {genre: len(items) for genre, items in builtin.by_genre().items()}
    assert set(counts) == REQUIRED_GENRES
    assert all(n >= 12 for n in counts.values()), counts


def test_builtin_ids_unique_and_well_formed(builtin: Corpus) -> None:
    ids = [p.id for p in builtin]
    assert len(ids) == len(set(ids))
    for prompt in builtin:
        assert re.fullmatch(rf"{re.escape(prompt.genre)}-\d{{3}}", prompt.id), prompt.id


def test_builtin_texts_non_empty_and_unique(builtin: Corpus) -> None:
    assert all(p.text.strip() for p in builtin)
    assert all(p.text == p.text.strip() for p in builtin)
    duplicates = [t for t, n in Counter(builtin.texts).items() if n > 1]
    assert not duplicates


def test_builtin_genre_shapes(builtin: Corpus) -> None:
    groups = builtin.by_genre()
    assert all(1 <= len(p.text.split()) <= 3 for p in groups["short"])
    assert all(1500 <= len(p.text) <= 2000 for p in groups["long"])
    typical = [p for genre, items in groups.items() if genre not in {"short", "long"} for p in items]
    assert all(len(p.text) <= 600 for p in typical), max(typical, key=lambda p: len(p.text)).id
    assert any(not p.text.isascii() for p in groups["non-english"])


def test_builtin_code_covers_several_languages(builtin: Corpus) -> None:
    code = "\n".join(p.text for p in builtin.by_genre()["code"])
    markers = {
        "python": "def ",
        "javascript": "console.log",
        "c": "#include",
        "sql": "SELECT",
        "rust": "fn main",
    }
    assert all(marker in code for marker in markers.values())
    assert "#!/bin/sh" in code


def test_builtin_file_is_valid_jsonl_with_required_fields() -> None:
    lines = BUILTIN_CORPUS_PATH.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert all(set(r) == {"id", "genre", "text"} for r in records)


def test_builtin_hash_is_stable_across_loads(builtin: Corpus) -> None:
    assert builtin.sha256 == corpus_hash(builtin.texts)
    load_builtin_corpus.cache_clear()
    try:
        again = load_builtin_corpus()
    finally:
        load_builtin_corpus.cache_clear()
    assert again.sha256 == builtin.sha256
    assert again == builtin
    assert builtin.source == str(BUILTIN_CORPUS_PATH)


def test_builtin_missing_gives_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "corpus.jsonl"
    monkeypatch.setattr(corpus_module, "BUILTIN_CORPUS_PATH", missing)
    load_builtin_corpus.cache_clear()
    try:
        with pytest.raises(CorpusFileNotFoundError) as info:
            load_builtin_corpus()
    finally:
        load_builtin_corpus.cache_clear()
    message = str(info.value)
    assert str(missing) in message
    assert "reinstall lmfacts" in message and "--prompts" in message  # the corpus ships in the wheel
    assert isinstance(info.value, FileNotFoundError)


def test_import_does_not_pull_in_torch() -> None:
    code = (
        "import sys, lmfacts.prompts, lmfacts.prompts.strategies, lmfacts.profiles\n"
        "heavy = [m for m in ('torch', 'transformers', 'transformer_lens') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# --- hashing ---------------------------------------------------------------------------------------


def test_hash_is_order_sensitive_and_framed() -> None:
    assert corpus_hash(["a", "b"]) != corpus_hash(["b", "a"])
    assert corpus_hash(["ab", "c"]) != corpus_hash(["a", "bc"])
    assert corpus_hash(["a"]) != corpus_hash(["a", ""])
    assert corpus_hash(iter(["x", "y"])) == corpus_hash(("x", "y"))


def test_hash_value_is_pinned() -> None:
    # Reports from different versions are comparable only while this framing stays the same.
    assert corpus_hash(["hello"]) == "e983b214e79269c4e4af26e181ef94407a02ad24a556c6400c2caeccc143ac00"


# --- Corpus behaviour ------------------------------------------------------------------------------


def _toy(n_per_genre: dict[str, int]) -> Corpus:
    prompts = [
        Prompt(id=f"{genre}-{i}", genre=genre, text=f"{genre} prompt number {i}.")
        for genre, n in n_per_genre.items()
        for i in range(n)
    ]
    return Corpus.from_prompts(prompts, source="toy")


def test_corpus_validates_hash_ids_and_emptiness() -> None:
    good = _toy({"a": 2})
    with pytest.raises(CorpusError, match="does not match"):
        Corpus(prompts=good.prompts, source="x", sha256="0" * 64)
    with pytest.raises(CorpusError, match="duplicate prompt id 'a-0'"):
        Corpus.from_prompts([good.prompts[0], good.prompts[0]], source="x")
    with pytest.raises(CorpusError, match="no prompts"):
        Corpus.from_prompts([], source="x")
    with pytest.raises(CorpusError, match="empty"):
        Corpus.from_prompts([Prompt("p", "g", "  \n")], source="x")


def test_by_genre_keeps_order() -> None:
    corpus = _toy({"b": 2, "a": 3})
    groups = corpus.by_genre()
    assert list(groups) == ["b", "a"]
    assert [p.id for p in groups["a"]] == ["a-0", "a-1", "a-2"]
    assert corpus.genres == ("b", "a")
    assert corpus.texts == tuple(p.text for p in corpus.prompts)


def test_sample_is_deterministic_stratified_and_ordered(builtin: Corpus) -> None:
    first = builtin.sample(40, seed=3)
    assert len(first) == 40
    assert first == builtin.sample(40, seed=3)
    assert first.texts != builtin.sample(40, seed=4).texts
    assert set(first.genres) == set(builtin.genres)
    positions = [builtin.prompts.index(p) for p in first]
    assert positions == sorted(positions)
    sizes = {g: len(v) for g, v in builtin.by_genre().items()}
    for genre, items in first.by_genre().items():
        expected = 40 * sizes[genre] / len(builtin)
        assert abs(len(items) - expected) <= 1.5, (genre, len(items), expected)
    assert first.sha256 == corpus_hash(first.texts)
    assert "sample(n=40,seed=3)" in first.source


def test_sample_small_n_and_edge_cases() -> None:
    corpus = _toy({"a": 10, "b": 10, "c": 1})
    three = corpus.sample(3, seed=0)
    assert set(three.genres) == {"a", "b", "c"}  # every genre when n >= number of genres
    assert len(corpus.sample(1, seed=5)) == 1
    assert corpus.sample(len(corpus)) is corpus
    assert corpus.sample(10_000) is corpus
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            corpus.sample(bad)  # type: ignore[arg-type]


# --- .txt loader ------------------------------------------------------------------------------------


def test_txt_loader_escapes_blank_lines_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("first line\n\n   \nsecond\\nline\nback\\\\slash \\\\n and \\t tab\n", encoding="utf-8")
    corpus = load_corpus_file(path)
    assert corpus.texts == ("first line", "second\nline", "back\\slash \\n and \\t tab")
    assert [p.id for p in corpus] == ["line-1", "line-4", "line-5"]
    assert {p.genre for p in corpus} == {"user"}
    assert corpus.source == str(path)
    assert corpus.sha256 == corpus_hash(corpus.texts)


def test_txt_loader_accepts_crlf(tmp_path: Path) -> None:
    path = tmp_path / "p.TXT"
    path.write_bytes(b"one\r\ntwo\r\n")
    assert load_corpus_file(path).texts == ("one", "two")


def test_txt_with_cr_only_line_endings_is_an_error(tmp_path: Path) -> None:
    """A classic-Mac file (CR-only line endings) was read as one prompt holding every line, silently: the run
    measured 1 prompt. It is an error naming the file, the line and the fix; CRLF and LF files still load."""
    path = tmp_path / "mac.txt"
    path.write_bytes(b"first prompt\rsecond prompt\rthird prompt\r")
    with pytest.raises(CorpusError, match=re.escape(f"{path}:1: 2 carriage return(s)")) as err:
        load_corpus_file(path)
    assert "read as one prompt" in str(err.value) and "convert the file" in str(err.value)
    path.write_bytes(b"first prompt\r\nsecond prompt\nthird prompt\r\n")
    assert load_corpus_file(path).texts == ("first prompt", "second prompt", "third prompt")


def test_txt_escape_only_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("ok\n\\n\\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=re.escape(f"{path}:2: empty prompt")):
        load_corpus_file(path)


def test_txt_with_only_blank_lines_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=re.escape(f"{path}: no prompts found")):
        load_corpus_file(path)


# --- .jsonl loader ----------------------------------------------------------------------------------


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_loader_fields_and_defaults(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "p.jsonl",
        [
            json.dumps({"id": "x1", "genre": "news", "text": "Hello there.", "extra": 1}),
            "",
            json.dumps({"text": "Multi\nline"}),
        ],
    )
    corpus = load_corpus_file(path)
    assert corpus.prompts == (Prompt("x1", "news", "Hello there."), Prompt("line-3", "user", "Multi\nline"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"text": "unterminated', "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"id": "a"}', "missing 'text' field"),
        ('{"text": ""}', "empty 'text'"),
        ('{"text": "  \\n "}', "empty 'text'"),
        ('{"text": 3}', "'text' must be a string, got int"),
        ('{"text": "ok", "genre": ""}', "'genre' must be a non-empty string"),
        ('{"text": "ok", "id": 7}', "'id' must be a non-empty string"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [json.dumps({"text": "fine"}), line])
    with pytest.raises(CorpusError) as info:
        load_corpus_file(path)
    assert f"{path}:2:" in str(info.value)
    assert expected in str(info.value)


def test_jsonl_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "dup.jsonl",
        [
            json.dumps({"id": "a", "text": "one"}),
            json.dumps({"id": "b", "text": "two"}),
            json.dumps({"id": "a", "text": "3"}),
        ],
    )
    with pytest.raises(
        CorpusError, match=re.escape(f"{path}:3: duplicate prompt id 'a' (first used at line 1)")
    ):
        load_corpus_file(path)


def test_empty_jsonl_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match="no prompts found"):
        load_corpus_file(path)


# --- file-level errors --------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(CorpusFileNotFoundError, match=re.escape(f"{path}: prompt file not found")):
        load_corpus_file(path)
    with pytest.raises(FileNotFoundError):
        load_corpus_file(str(tmp_path / "absent.txt"))


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_corpus_file(path)
    message = str(info.value)
    assert str(path) in message and "'.csv'" in message and ".txt" in message and ".jsonl" in message


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("ok\ncafé\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=re.escape(f"{path}:2: not valid UTF-8 (byte 0xe9 at offset 6")):
        load_corpus_file(path)


def test_utf8_byte_order_mark_is_not_part_of_the_first_prompt(tmp_path: Path) -> None:
    for name, body in (("p.txt", "first\nsecond\n"), ("p.jsonl", '{"text": "first"}\n{"text": "second"}\n')):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + body.encode())
        assert load_corpus_file(path).texts == ("first", "second")


def test_only_newline_ends_a_line_not_form_feed_or_unicode_separators(tmp_path: Path) -> None:
    """JSON Lines allows U+2028/U+2029 unescaped inside strings (``json.dumps(ensure_ascii=False)`` writes
    them raw) and web text carries form feeds and U+0085: they are characters of the prompt."""
    texts = ["line one\u2028same prompt", "para\u2029same", "page\x0csame", "nel\x85same", "vt\x0bsame"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    assert load_corpus_file(jsonl).texts == tuple(texts)
    txt = tmp_path / "p.txt"
    txt.write_text("\r\n".join(texts) + "\r\n", encoding="utf-8")
    assert load_corpus_file(txt).texts == tuple(texts)
