"""Prompt corpora: the built-in corpus and user-supplied prompt files.

A :class:`Corpus` is an immutable, ordered collection of :class:`Prompt` records together with
the file it came from and a SHA-256 over its texts (:func:`corpus_hash`). The hash is recorded in
every replication report, so two runs can be compared only when they measured the same prompts.

File formats (:func:`load_corpus_file`):

Lines end at ``\\n`` (a ``\\r`` before it is dropped); other line-breaking characters (form feed,
U+2028 …) belong to the prompt. A ``.txt`` line holding a carriage return not followed by ``\\n`` is an
error (a file with classic-Mac CR-only line endings would otherwise be read as one prompt). The file is
UTF-8; a leading byte-order mark is ignored.

``.txt``
    One prompt per line. Inside a line, the two-character escape ``\\n`` becomes a newline and
    ``\\\\`` becomes a single backslash; any other backslash is kept as written. Blank lines are
    skipped. Every prompt gets genre ``"user"`` and id ``"line-<N>"``.
``.jsonl``
    One JSON object per line with a non-empty string ``text`` and optional string ``id`` and
    ``genre`` (defaults ``"line-<N>"`` and ``"user"``). Blank lines are skipped; other keys are
    ignored.

An empty prompt is always an error (never silently dropped), as are duplicate ids and a file
without any prompt. Every error is a :class:`CorpusError` whose message names the file and,
where there is one, the line.

This module must stay cheap to import: no torch, no transformers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lmfacts.resources import fixtures_dir

__all__ = [
    "BUILTIN_CORPUS_PATH",
    "Corpus",
    "CorpusError",
    "CorpusFileNotFoundError",
    "Prompt",
    "corpus_hash",
    "load_builtin_corpus",
    "load_corpus_file",
]

#: Where the built-in corpus lives: ``fixtures/prompts/corpus.jsonl`` of a checkout, shipped in the wheel
#: as ``lmfacts/fixtures/prompts/corpus.jsonl`` (:func:`lmfacts.resources.fixtures_dir`).
BUILTIN_CORPUS_PATH: Path = fixtures_dir("prompts", "corpus.jsonl")

_DEFAULT_GENRE = "user"
_SUPPORTED_SUFFIXES = (".txt", ".jsonl")
_TXT_ESCAPE = re.compile(r"\\(\\|n)")
_HASH_DOMAIN = b"lmfacts-corpus-v1\x00"


class CorpusError(ValueError):
    """A prompt file or corpus is malformed; the message names the file and line."""


class CorpusFileNotFoundError(CorpusError, FileNotFoundError):
    """A prompt file (or the built-in corpus) does not exist."""


@dataclass(frozen=True)
class Prompt:
    """One prompt: a stable id, a genre label and the exact text fed to the tokenizer."""

    id: str
    genre: str
    text: str


def corpus_hash(texts: Iterable[str]) -> str:
    """Return the hex SHA-256 of ``texts``, order-sensitive and unambiguously framed.

    Each text is UTF-8 encoded and prefixed with its byte length (8 bytes, big-endian), so
    ``["ab", "c"]`` and ``["a", "bc"]`` hash differently, as do different orders of the same texts.
    """
    digest = hashlib.sha256(_HASH_DOMAIN)
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class Corpus:
    """An ordered, immutable set of prompts with its source and content hash.

    Build one with :meth:`from_prompts` (which computes the hash); the constructor checks that
    ``sha256`` matches the texts and that prompt ids are unique.
    """

    prompts: tuple[Prompt, ...]
    source: str
    sha256: str

    def __post_init__(self) -> None:
        if not self.prompts:
            raise CorpusError(f"{self.source}: corpus has no prompts")
        seen: set[str] = set()
        for prompt in self.prompts:
            if not prompt.text.strip():
                raise CorpusError(f"{self.source}: prompt {prompt.id!r} is empty")
            if prompt.id in seen:
                raise CorpusError(f"{self.source}: duplicate prompt id {prompt.id!r}")
            seen.add(prompt.id)
        expected = corpus_hash(self.texts)
        if self.sha256 != expected:
            raise CorpusError(f"{self.source}: sha256 {self.sha256!r} does not match the texts ({expected})")

    @classmethod
    def from_prompts(cls, prompts: Iterable[Prompt], source: str) -> Corpus:
        """Build a corpus from ``prompts`` (order kept), computing its hash."""
        items = tuple(prompts)
        return cls(prompts=items, source=source, sha256=corpus_hash(p.text for p in items))

    @property
    def texts(self) -> tuple[str, ...]:
        """The prompt texts, in corpus order."""
        return tuple(p.text for p in self.prompts)

    @property
    def genres(self) -> tuple[str, ...]:
        """The distinct genres, in order of first appearance."""
        return tuple(self.by_genre())

    def by_genre(self) -> dict[str, tuple[Prompt, ...]]:
        """Group prompts by genre; genres and prompts keep corpus order."""
        groups: dict[str, list[Prompt]] = {}
        for prompt in self.prompts:
            groups.setdefault(prompt.genre, []).append(prompt)
        return {genre: tuple(items) for genre, items in groups.items()}

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def sample(self, n: int, seed: int = 0) -> Corpus:
        """Return a deterministic subset of ``n`` prompts, stratified by genre.

        Each genre gets a share proportional to its size (largest-remainder rounding); when
        ``n`` is at least the number of genres, every genre gets at least one prompt. The same
        ``(n, seed)`` always gives the same subset, and the subset keeps corpus order. If ``n``
        is at least ``len(self)`` the whole corpus is returned.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"sample size must be a positive integer, got {n!r}")
        if n >= len(self):
            return self
        groups = self.by_genre()
        quota = _allocate(n, {genre: len(items) for genre, items in groups.items()})
        rng = random.Random(seed)
        chosen: set[str] = set()
        for genre, items in groups.items():
            chosen.update(p.id for p in rng.sample(items, quota[genre]))
        picked = [p for p in self.prompts if p.id in chosen]
        return Corpus.from_prompts(picked, source=f"{self.source}#sample(n={n},seed={seed})")


def _allocate(n: int, sizes: dict[str, int]) -> dict[str, int]:
    """Split ``n`` (< total) across groups proportionally to ``sizes`` (largest remainder)."""
    total = sum(sizes.values())
    exact = {g: n * size / total for g, size in sizes.items()}
    quota = {g: int(value) for g, value in exact.items()}
    order = list(sizes)
    by_remainder = sorted(order, key=lambda g: (-(exact[g] - quota[g]), -sizes[g], order.index(g)))
    for g in by_remainder[: n - sum(quota.values())]:
        quota[g] += 1
    if n >= len(sizes):
        for g in order:
            if quota[g] == 0:
                donor = max(order, key=lambda d: (quota[d], -order.index(d)))
                quota[donor] -= 1
                quota[g] = 1
    return quota


def load_corpus_file(path: str | Path) -> Corpus:
    """Load a ``.txt`` or ``.jsonl`` prompt file (formats in the module docstring).

    Raises :class:`CorpusFileNotFoundError` if the file does not exist and :class:`CorpusError`
    for an unknown extension, undecodable text, invalid JSON, a missing/empty ``text``, a bad
    ``id``/``genre``, a duplicate id, or a file without prompts; messages name the file and line.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in _SUPPORTED_SUFFIXES:
        raise CorpusError(
            f"{file}: unknown prompt file extension {file.suffix!r}; expected one of {', '.join(_SUPPORTED_SUFFIXES)}"
        )
    if not file.is_file():
        raise CorpusFileNotFoundError(f"{file}: prompt file not found")
    raw_bytes = file.read_bytes()
    try:
        content = raw_bytes.decode("utf-8-sig")  # a leading byte-order mark (Windows editors) is not text
    except UnicodeDecodeError as exc:
        lineno = raw_bytes[: exc.start].count(b"\n") + 1
        raise CorpusError(f"{file}:{lineno}: not valid UTF-8 (byte {raw_bytes[exc.start]:#04x} at offset {exc.start}: "
                          f"{exc.reason}); save the file as UTF-8") from exc
    parse = _parse_txt if suffix == ".txt" else _parse_jsonl
    prompts = list(parse(file, content))
    if not prompts:
        raise CorpusError(f"{file}: no prompts found (the file is empty or has only blank lines)")
    seen: dict[str, int] = {}
    for lineno, prompt in prompts:
        if prompt.id in seen:
            raise CorpusError(
                f"{file}:{lineno}: duplicate prompt id {prompt.id!r} (first used at line {seen[prompt.id]})"
            )
        seen[prompt.id] = lineno
    return Corpus.from_prompts((p for _, p in prompts), source=str(file))


def _lines(content: str) -> list[str]:
    """The lines of a prompt file: split at ``\\n`` only, a trailing ``\\r`` (CRLF files) dropped.

    Not ``str.splitlines``, which also splits at form feeds, U+0085, U+2028 and U+2029 and the like:
    those are characters inside a prompt (scraped web text has them), and JSON Lines allows U+2028/U+2029
    unescaped inside a string, so splitting there cut one prompt in two or broke a valid JSON line.
    """
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _unescape_txt(line: str) -> str:
    """Turn ``\\n`` into a newline and ``\\\\`` into a backslash; leave other backslashes."""
    return _TXT_ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else "\\", line)


def _parse_txt(file: Path, content: str) -> Iterator[tuple[int, Prompt]]:
    """Yield ``(line number, prompt)`` for each non-blank line of a ``.txt`` prompt file."""
    for lineno, raw in enumerate(_lines(content), start=1):
        if "\r" in raw:
            n = raw.count("\r")
            raise CorpusError(
                f"{file}:{lineno}: {n} carriage return(s) (\\r) not followed by a line feed: the file has "
                "classic-Mac (CR-only) line endings or stray CRs, and prompts end at \\n only, so "
                f"{'these lines would be read as one prompt' if n > 1 else 'this line would keep a CR'}; "
                "convert the file to \\n (or \\r\\n) line endings, or put prompts that contain a CR in a "
                ".jsonl file (\"\\r\" in the JSON string)")
        if not raw.strip():
            continue
        text = _unescape_txt(raw)
        if not text.strip():
            raise CorpusError(f"{file}:{lineno}: empty prompt (only escapes/whitespace)")
        yield lineno, Prompt(id=f"line-{lineno}", genre=_DEFAULT_GENRE, text=text)


def _parse_jsonl(file: Path, content: str) -> Iterator[tuple[int, Prompt]]:
    """Yield ``(line number, prompt)`` for each non-blank line of a ``.jsonl`` prompt file."""
    for lineno, raw in enumerate(_lines(content), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{file}:{lineno}: invalid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise CorpusError(f"{file}:{lineno}: expected a JSON object, got {type(record).__name__}")
        if "text" not in record:
            raise CorpusError(f"{file}:{lineno}: missing 'text' field")
        text = record["text"]
        if not isinstance(text, str):
            raise CorpusError(f"{file}:{lineno}: 'text' must be a string, got {type(text).__name__}")
        if not text.strip():
            raise CorpusError(f"{file}:{lineno}: empty 'text'")
        fields = {"id": f"line-{lineno}", "genre": _DEFAULT_GENRE}
        for key in fields:
            if key in record:
                value = record[key]
                if not isinstance(value, str) or not value.strip():
                    raise CorpusError(f"{file}:{lineno}: {key!r} must be a non-empty string, got {value!r}")
                fields[key] = value
        yield lineno, Prompt(id=fields["id"], genre=fields["genre"], text=text)


@functools.lru_cache(maxsize=1)
def load_builtin_corpus() -> Corpus:
    """Load (once per process) the built-in corpus at :data:`BUILTIN_CORPUS_PATH`.

    The corpus ships in the wheel (``lmfacts/fixtures/prompts/corpus.jsonl``) and lies in a checkout at
    ``fixtures/prompts/corpus.jsonl``. A clear :class:`CorpusFileNotFoundError` is raised when the
    file is not there (an installation that lost its package data).
    """
    if not BUILTIN_CORPUS_PATH.is_file():
        raise CorpusFileNotFoundError(
            f"{BUILTIN_CORPUS_PATH}: built-in prompt corpus not found. It ships with lmfacts (the wheel's "
            "lmfacts/fixtures/prompts/corpus.jsonl, a checkout's fixtures/prompts/corpus.jsonl): reinstall "
            "lmfacts, or pass your own prompts with --prompts FILE (load_corpus_file())."
        )
    return load_corpus_file(BUILTIN_CORPUS_PATH)
