"""Hypothesis strategies that generate prompts for claims.

All strategies yield ``str`` prompts that are non-empty after ``.strip()`` and shrink towards
short, plain prompts: corpus prompts are offered shortest first (so ``st.sampled_from`` shrinks to
the shortest matching prompt), the simplest branch comes first in every ``st.one_of``, and
perturbations shrink towards the mildest one.

Use :func:`natural_prompts` for claims about ordinary text. :func:`robustness_prompts` (single
characters, repeated words, very long inputs, unusual Unicode) is only for claims that should hold
for *any* input, such as shape or finiteness invariants.

This module imports Hypothesis but never torch or transformers.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from hypothesis import assume
from hypothesis import strategies as st

from lmfacts.prompts.corpus import Corpus, load_builtin_corpus

__all__ = [
    "DEFAULT_MAX_CHARS",
    "PERTURBATIONS",
    "ROBUSTNESS_CATEGORIES",
    "corpus_prompts",
    "natural_prompts",
    "perturbed",
    "repeated_words",
    "robustness_prompts",
    "single_characters",
    "spliced_prompts",
    "split_sentences",
    "token_truncated",
    "truncated",
    "unusual_unicode",
    "very_long_prompts",
    "word_windows",
    "run_prompts",
    "active_corpus",
    "set_active_corpus",
    "ROBUSTNESS_MAX_TOKENS",
    "active_token_counter",
    "set_active_token_counter",
]

#: Default character budget of :func:`natural_prompts`: about 250 tokens of English, which keeps
#: prompts inside the 256-token context of the tiny test models. Pass a larger value (or use
#: :func:`token_truncated` with the model's tokenizer) to reach the corpus's long genre in full.
DEFAULT_MAX_CHARS = 1000

_SENTENCE_BREAK = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_WHITESPACE_RUN = re.compile(r"[ \t]+")
_PUNCTUATION = set(string.punctuation) | set("…“”‘’«»¿¡。、，！？")


def _resolve(corpus: Corpus | None) -> Corpus:
    """Return ``corpus`` or, when it is None, the built-in corpus."""
    return load_builtin_corpus() if corpus is None else corpus


def _plain_order(texts: tuple[str, ...]) -> list[str]:
    """Distinct non-blank texts, shortest first (ties keep corpus order)."""
    unique = dict.fromkeys(t for t in texts if t.strip())
    return sorted(unique, key=len)


def _ensure_text(value: str, fallback: str) -> str:
    """Return ``value`` unless it is blank after stripping, else ``fallback``."""
    return value if value.strip() else fallback


def corpus_prompts(corpus: Corpus | None = None) -> st.SearchStrategy[str]:
    """Prompts drawn from ``corpus`` (default: the built-in one), shrinking to the shortest."""
    texts = _plain_order(_resolve(corpus).texts)
    if not texts:
        raise ValueError("corpus_prompts needs a corpus with at least one non-blank prompt")
    return _shortest_first(texts)


_TIER_SIZE = 4


def _shortest_first(texts: list[str]) -> st.SearchStrategy[str]:
    """Uniform-ish choice from ``texts`` (sorted shortest first) that shrinks towards the start.

    A single ``sampled_from`` index shrinks poorly when the failing prompts are scattered: the
    shrinker only tries 0, 1 and small decrements. Drawing the index as (tier, position) with
    tiers of four lets it also jump between tiers, which in practice finds much shorter prompts
    for the same number of (expensive, model-running) shrink steps.
    """
    if len(texts) <= _TIER_SIZE:
        return st.sampled_from(texts)
    tiers = (len(texts) + _TIER_SIZE - 1) // _TIER_SIZE
    return st.builds(
        lambda tier, position: texts[min(tier * _TIER_SIZE + position, len(texts) - 1)],
        st.integers(0, tiers - 1),
        st.integers(0, _TIER_SIZE - 1),
    )


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (at ``.!?`` followed by whitespace) and lines; drop blanks."""
    return [part.strip() for part in _SENTENCE_BREAK.split(text) if part.strip()]


def spliced_prompts(corpus: Corpus | None = None, max_parts: int = 3) -> st.SearchStrategy[str]:
    """One sentence from each of 2..``max_parts`` different corpus prompts, joined together.

    Shrinks towards the first sentence of the two shortest prompts, joined by a space.
    """
    if max_parts < 2:
        raise ValueError(f"max_parts must be at least 2, got {max_parts}")
    resolved = _resolve(corpus)
    pools = [split_sentences(text) for text in _plain_order(resolved.texts)]
    pools = [pool for pool in pools if pool]
    if len(pools) < 2:
        raise ValueError(
            f"the prompt corpus {resolved.source!r} has {len(pools)} non-blank prompt(s), and the per-prompt claims "
            "join sentences of at least two different prompts: give --prompts a file with two or more prompts")
    parts_max = min(max_parts, len(pools))

    @st.composite
    def _spliced(draw: st.DrawFn) -> str:
        chosen = draw(st.lists(st.integers(0, len(pools) - 1), min_size=2, max_size=parts_max, unique=True))
        sentences = [pool[draw(st.integers(0, len(pool) - 1))] for pool in (pools[i] for i in chosen)]
        separator = draw(st.sampled_from([" ", "\n", "\n\n"]))
        return separator.join(sentences)

    return _spliced()


def _cut(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, preferring a word boundary."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    if not text[max_chars].isspace():
        boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        if boundary > max_chars // 2:
            head = head[:boundary]
    head = head.rstrip()
    return head if head.strip() else text.strip()[:max_chars]


def truncated(strategy: st.SearchStrategy[str], max_chars: int) -> st.SearchStrategy[str]:
    """Prompts from ``strategy`` cut to at most ``max_chars`` characters (at a word if possible).

    Blank results are impossible as long as ``strategy`` yields non-blank prompts.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    return strategy.map(lambda text: _cut(text, max_chars))


def _longest_prefix_within(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> str | None:
    """Longest prefix of ``text`` with at most ``max_tokens`` tokens (binary search), or None."""
    if count_tokens(text) <= max_tokens:
        return text
    lo, hi = 0, len(text)  # invariant: prefix of length lo fits (or lo == 0), length hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_tokens(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid
    prefix = text[:lo].rstrip()
    return prefix if prefix.strip() and count_tokens(prefix) <= max_tokens else None


def token_truncated(
    strategy: st.SearchStrategy[str], count_tokens: Callable[[str], int], max_tokens: int
) -> st.SearchStrategy[str]:
    """Prompts from ``strategy`` cut to the longest prefix with at most ``max_tokens`` tokens.

    ``count_tokens`` must count exactly what the model will see (including any BOS token the
    caller adds). Prompts whose first character alone exceeds the budget are rejected.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")

    @st.composite
    def _token_truncated(draw: st.DrawFn) -> str:
        prefix = _longest_prefix_within(draw(strategy), count_tokens, max_tokens)
        assume(prefix is not None)
        assert prefix is not None
        return prefix

    return _token_truncated()


def _collapse_whitespace(text: str) -> str:
    return _WHITESPACE_RUN.sub(" ", text).strip()


def _strip_punctuation(text: str) -> str:
    return "".join(ch for ch in text if ch not in _PUNCTUATION)


def _first_upper(text: str) -> str:
    stripped = text.lstrip()
    return text[: len(text) - len(stripped)] + stripped[:1].upper() + stripped[1:]


#: Named perturbations, mildest first (``perturbed`` shrinks towards the start of this tuple).
PERTURBATIONS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("lowercase", str.lower),
    ("trailing_space", lambda t: t + " "),
    ("capitalize_first", _first_upper),
    ("trailing_newline", lambda t: t + "\n"),
    ("add_period", lambda t: t.rstrip() + "."),
    ("leading_space", lambda t: " " + t),
    ("collapse_whitespace", _collapse_whitespace),
    ("double_spaces", lambda t: t.replace(" ", "  ")),
    ("strip_punctuation", _strip_punctuation),
    ("add_exclamation", lambda t: t.rstrip() + "!"),
    ("tabs_for_spaces", lambda t: t.replace(" ", "\t")),
    ("uppercase", str.upper),
    ("swapcase", str.swapcase),
    ("crlf_newlines", lambda t: t.replace("\n", "\r\n")),
)


def perturbed(strategy: st.SearchStrategy[str], max_perturbations: int = 3) -> st.SearchStrategy[str]:
    """Prompts from ``strategy`` with 1..``max_perturbations`` case/whitespace/punctuation edits.

    Edits come from :data:`PERTURBATIONS`; one that would leave a blank prompt is skipped. Some
    edits are no-ops on some inputs (lowercasing ``"42"``). Shrinks towards a single ``lowercase``.
    """
    if max_perturbations < 1:
        raise ValueError(f"max_perturbations must be at least 1, got {max_perturbations}")
    names = st.sampled_from(range(len(PERTURBATIONS)))

    @st.composite
    def _perturbed(draw: st.DrawFn) -> str:
        text = draw(strategy)
        for index in draw(st.lists(names, min_size=1, max_size=max_perturbations)):
            text = _ensure_text(PERTURBATIONS[index][1](text), text)
        return text

    return _perturbed()


def single_characters() -> st.SearchStrategy[str]:
    """A single printable character or a one-token-ish fragment (``"a"`` first)."""
    return st.sampled_from(list(string.ascii_letters + string.digits + string.punctuation))


_REPEATABLE_WORDS = ("the", "a", "hello", "data", "1", "and", "cat", "!")


def repeated_words(max_repeats: int = 512) -> st.SearchStrategy[str]:
    """One word repeated 2..``max_repeats`` times, space-separated (``"the the"`` first)."""
    return st.builds(
        lambda word, n: " ".join([word] * n),
        st.sampled_from(_REPEATABLE_WORDS),
        st.integers(2, max_repeats),
    )


_FILLER_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A long input is made of many ordinary sentences.",
    "Numbers such as 3, 14 and 159 appear now and then.",
    "def f(x):\n    return x * 2\n",
    "Rain fell on the old town all through the night.",
)


def very_long_prompts(min_chars: int = 2000, max_chars: int = 8000) -> st.SearchStrategy[str]:
    """Several thousand characters of ordinary text built by cycling filler sentences."""
    if not 1 <= min_chars <= max_chars:
        raise ValueError(f"need 1 <= min_chars <= max_chars, got {min_chars}, {max_chars}")

    def build(length: int, start: int) -> str:
        parts: list[str] = []
        size, i = 0, start
        while size < length:
            sentence = _FILLER_SENTENCES[i % len(_FILLER_SENTENCES)]
            parts.append(sentence)
            size += len(sentence) + 1
            i += 1
        return " ".join(parts)[:length].rstrip()

    return st.builds(build, st.integers(min_chars, max_chars), st.integers(0, len(_FILLER_SENTENCES) - 1))


#: Hand-picked unusual Unicode inputs, grouped by category.
_UNICODE_SAMPLES: dict[str, tuple[str, ...]] = {
    "cjk": ("漢字", "東京で会いましょう。", "我们明天见。", "한국어 문장입니다."),
    "emoji": (
        "\U0001f642",
        "I \u2764\ufe0f pizza \U0001f355\U0001f355",
        "\U0001f469\u200d\U0001f469\u200d\U0001f467 family",
        "\U0001f1eb\U0001f1f7\U0001f1ef\U0001f1f5 flags",
        "\U0001f44d\U0001f3fd ok",
    ),
    "combining": (
        "e\u0301te\u0301",
        "n\u0303o",
        "Z\u0335\u0321a\u0336\u0322l\u0334\u0327g\u0337o\u0338",
        "a\u0308\u0304",
    ),
    "rtl": ("שלום עולם", "مرحبا بالعالم", "abc \u202edcba\u202c xyz", "English then עברית then English"),
    "zero_width": ("zero\u200bwidth", "join\u200dme", "\ufeffbom start", "soft\u00adhyphen", "a\u2060b"),
    "mixed_scripts": ("Ελληνικά и русский and English", "नमस्ते दुनिया", "ไทย ภาษา", "½ ⅓ ∑ ∞ ≠ ≤"),
}


def unusual_unicode() -> st.SearchStrategy[str]:
    """Emoji, combining marks, right-to-left text, CJK, zero-width characters and mixed scripts.

    Hand-picked samples come first; generated strings of non-ASCII letters, marks and symbols
    follow for wider coverage.
    """
    samples = [text for group in _UNICODE_SAMPLES.values() for text in group]
    generated = st.text(
        alphabet=st.characters(categories=("Lo", "Ll", "Lu", "Mn", "So", "Cf"), min_codepoint=0x80),
        min_size=1,
        max_size=40,
    ).filter(lambda t: bool(t.strip()))
    return st.one_of(st.sampled_from(samples), generated)


#: The categories :func:`robustness_prompts` covers, in its ``one_of`` order.
ROBUSTNESS_CATEGORIES = ("single_character", "repeated_word", "very_long", "unusual_unicode")

#: The per-example budget of per-prompt claims: a robustness prompt is cut to at most this many
#: tokens of the model under test, so one Hypothesis example costs at most one forward pass of
#: that many tokens (run.json records it under ``per_prompt``). Without a token counter (outside
#: a run) the cut is ``ROBUSTNESS_CHARS_PER_TOKEN`` characters per token.
ROBUSTNESS_MAX_TOKENS = 512
ROBUSTNESS_CHARS_PER_TOKEN = 4

_TOKEN_COUNTER: dict[str, Callable[[str], int]] = {}


def set_active_token_counter(count_tokens: Callable[[str], int] | None) -> None:
    """Count tokens as the model under test does (the session sets it when a model loads); None clears it."""
    if count_tokens is None:
        _TOKEN_COUNTER.pop("count", None)
    else:
        _TOKEN_COUNTER["count"] = count_tokens


def active_token_counter() -> Callable[[str], int] | None:
    """The token counter of the model under test, or None outside a run."""
    return _TOKEN_COUNTER.get("count")


def _cap_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut to its longest prefix of at most ``max_tokens`` tokens (of the active counter, else
    ``ROBUSTNESS_CHARS_PER_TOKEN`` characters per token); never blank."""
    count = active_token_counter()
    if count is None:
        return _cut(text, max_tokens * ROBUSTNESS_CHARS_PER_TOKEN)
    prefix = _longest_prefix_within(text, count, max_tokens)
    return prefix if prefix is not None else _cut(text, 1)


def robustness_prompts(max_tokens: int | None = ROBUSTNESS_MAX_TOKENS) -> st.SearchStrategy[str]:
    """Adversarial-but-valid inputs for claims that must hold for ANY prompt.

    A mix of :func:`single_characters`, :func:`repeated_words`, :func:`very_long_prompts` and
    :func:`unusual_unicode` (see :data:`ROBUSTNESS_CATEGORIES`); shrinks towards ``"a"``. Each
    prompt is cut to ``max_tokens`` tokens of the model under test (see
    :data:`ROBUSTNESS_MAX_TOKENS`); None keeps every prompt whole. Raises ValueError for a cap < 1.
    """
    mix = st.one_of(single_characters(), repeated_words(), very_long_prompts(), unusual_unicode())
    if max_tokens is None:
        return mix
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    return mix.map(lambda text: _cap_tokens(text, max_tokens))


def word_windows(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A contiguous run of words from each generated text.

    The number of words kept is drawn first and shrinks towards 1, then the start. Hypothesis's
    shrinker lowers ``keep`` while raising ``start`` (it redistributes between neighbouring
    integers), so a failure that depends on one word shrinks to (nearly) that word alone.
    """

    @st.composite
    def _window(draw: st.DrawFn) -> str:
        text = draw(strategy)
        words = text.split(" ")
        keep = draw(st.integers(1, len(words)))
        start = draw(st.integers(0, len(words) - keep))
        return _ensure_text(" ".join(words[start:start + keep]), text)

    return _window()


def natural_prompts(
    corpus: Corpus | None = None,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> st.SearchStrategy[str]:
    """The default prompt mix: corpus prompts, spliced sentences, perturbed prompts and word windows.

    Everything is cut to ``max_chars`` characters and, when both ``count_tokens`` and
    ``max_tokens`` are given, to ``max_tokens`` tokens. Shrinks towards the shortest corpus prompt.
    """
    if (count_tokens is None) != (max_tokens is None):
        raise ValueError("give both count_tokens and max_tokens, or neither")
    resolved = _resolve(corpus)
    base = corpus_prompts(resolved)
    mix = truncated(st.one_of(base, spliced_prompts(resolved), perturbed(base)), max_chars)
    # Every example is a window of words of a prompt (often the whole prompt: bounded integers
    # are drawn at their ends often); a witness shrinks to the few words that matter.
    mix = word_windows(mix)
    if count_tokens is not None and max_tokens is not None:
        mix = token_truncated(mix, count_tokens, max_tokens)
    return mix


_ACTIVE_CORPUS: dict[str, Corpus] = {}


def set_active_corpus(corpus: Corpus) -> None:
    """Make ``corpus`` the one :func:`run_prompts` draws from (the plugin sets the run's corpus)."""
    _ACTIVE_CORPUS["corpus"] = corpus


def active_corpus() -> Corpus:
    """The run's corpus (``--prompts`` or the built-in one); the built-in corpus outside a run."""
    return _ACTIVE_CORPUS.get("corpus") or load_builtin_corpus()


def run_prompts(**kwargs: object) -> st.SearchStrategy[str]:
    """:func:`natural_prompts` over the run's corpus, resolved lazily at the first draw.

    Use it in ``@given`` of a claim: the decorator runs at import time, before the run's corpus
    (``--prompts``) is known.
    """
    return st.deferred(lambda: natural_prompts(active_corpus(), **kwargs))  # type: ignore[arg-type]
