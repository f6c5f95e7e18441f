"""Tests for the Hypothesis prompt strategies."""

from __future__ import annotations

import statistics
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample, Unsatisfiable

from lmfacts.prompts.corpus import Corpus, Prompt, load_builtin_corpus
from lmfacts.prompts.strategies import (
    DEFAULT_MAX_CHARS,
    PERTURBATIONS,
    ROBUSTNESS_CATEGORIES,
    corpus_prompts,
    natural_prompts,
    perturbed,
    repeated_words,
    robustness_prompts,
    single_characters,
    spliced_prompts,
    split_sentences,
    token_truncated,
    truncated,
    unusual_unicode,
    very_long_prompts,
)

CORPUS = load_builtin_corpus()
MEDIAN_CHARS = statistics.median(len(t) for t in CORPUS.texts)

FAST = settings(max_examples=60, deadline=None, database=None)
# find() must be reproducible in a test suite, so it runs derandomized.
SEARCH = settings(max_examples=2000, deadline=None, database=None, derandomize=True)


def _find(strategy: st.SearchStrategy[str], condition: Callable[[str], bool]) -> str:
    return find(strategy, condition, settings=SEARCH)


def _toy_corpus() -> Corpus:
    texts = [
        "Alpha one. Alpha two.",
        "Beta one! Beta two.",
        "Gamma one? Gamma two.",
        "Delta one.\nDelta two.",
    ]
    return Corpus.from_prompts([Prompt(f"t-{i}", "toy", text) for i, text in enumerate(texts)], source="toy")


# --- corpus_prompts --------------------------------------------------------------------------------


@FAST
@given(corpus_prompts(CORPUS))
def test_corpus_prompts_come_from_the_corpus(prompt: str) -> None:
    assert prompt in CORPUS.texts
    assert prompt.strip()


def test_corpus_prompts_default_to_builtin_and_shrink_to_shortest() -> None:
    shortest = min(CORPUS.texts, key=len)
    assert _find(corpus_prompts(), lambda s: True) == shortest
    assert _find(corpus_prompts(CORPUS), lambda s: "the" in s.lower()) == "The"


def test_corpus_prompts_reach_every_genre() -> None:
    by_text = {p.text: p.genre for p in CORPUS}
    for genre in CORPUS.genres:
        assert by_text[_find(corpus_prompts(CORPUS), lambda s, g=genre: by_text[s] == g)] == genre


# --- spliced_prompts ---------------------------------------------------------------------------------


def test_split_sentences() -> None:
    assert split_sentences("One. Two!  Three?\n\nFour") == ["One.", "Two!", "Three?", "Four"]
    assert split_sentences("3.14 is pi") == ["3.14 is pi"]
    assert split_sentences("  \n ") == []


@FAST
@given(spliced_prompts(_toy_corpus(), max_parts=3))
def test_spliced_prompts_join_sentences_from_different_prompts(prompt: str) -> None:
    words = prompt.split()
    sources = [w for w in words if w in {"Alpha", "Beta", "Gamma", "Delta"}]
    assert 2 <= len(sources) <= 3
    assert len(set(sources)) == len(sources)  # one sentence per source prompt


def test_spliced_prompts_shrink_to_two_short_sentences() -> None:
    minimal = _find(spliced_prompts(CORPUS), lambda s: True)
    assert len(minimal) <= 10, minimal


def test_spliced_prompts_need_two_prompts() -> None:
    single = Corpus.from_prompts([Prompt("a", "g", "Only one.")], source="x")
    with pytest.raises(ValueError, match="at least two") as err:
        spliced_prompts(single)
    assert "'x' has 1 non-blank prompt" in str(err.value) and "--prompts" in str(err.value)  # what to fix
    with pytest.raises(ValueError, match="max_parts"):
        spliced_prompts(CORPUS, max_parts=1)


# --- truncation ----------------------------------------------------------------------------------------


@FAST
@given(st.data(), st.text(min_size=1).filter(str.strip), st.integers(1, 60))
def test_truncated_respects_budget_and_stays_non_empty(data: st.DataObject, text: str, budget: int) -> None:
    out = data.draw(truncated(st.just(text), budget))
    assert out.strip()
    assert len(out) <= budget
    assert out.strip() in text
    if len(text) <= budget:
        assert out == text


def test_truncated_prefers_word_boundaries() -> None:
    text = "the quick brown fox jumps over the lazy dog"
    assert _find(truncated(st.just(text), 18), lambda s: True) == "the quick brown"
    assert _find(truncated(st.just("   leading spaces"), 2), lambda s: True) == "le"
    with pytest.raises(ValueError):
        truncated(st.just(text), 0)


@FAST
@given(st.data(), st.integers(1, 12))
def test_token_truncated_respects_token_budget(data: st.DataObject, budget: int) -> None:
    def count_words(text: str) -> int:
        return len(text.split())

    out = data.draw(token_truncated(corpus_prompts(CORPUS), count_words, budget))
    assert out.strip()
    assert count_words(out) <= budget


def test_token_truncated_rejects_prompts_that_cannot_fit() -> None:
    def three_per_char(text: str) -> int:
        return 3 * len(text)

    with pytest.raises((Unsatisfiable, NoSuchExample)):
        find(token_truncated(st.just("abc"), three_per_char, 2), lambda s: True, settings=SEARCH)
    assert _find(token_truncated(st.just("abc"), three_per_char, 6), lambda s: True) == "ab"
    with pytest.raises(ValueError):
        token_truncated(st.just("abc"), len, 0)


# --- perturbed ------------------------------------------------------------------------------------------


def test_each_perturbation_does_what_its_name_says() -> None:
    table = dict(PERTURBATIONS)
    text = "Hello,  World. Bye"
    assert table["lowercase"](text) == "hello,  world. bye"
    assert table["uppercase"](text) == "HELLO,  WORLD. BYE"
    assert table["collapse_whitespace"](text) == "Hello, World. Bye"
    assert table["strip_punctuation"](text) == "Hello  World Bye"
    assert table["add_period"](text) == "Hello,  World. Bye."
    assert table["capitalize_first"](" hi") == " Hi"
    assert table["trailing_newline"](text).endswith("\n")
    assert table["crlf_newlines"]("a\nb") == "a\r\nb"
    assert len({name for name, _ in PERTURBATIONS}) == len(PERTURBATIONS)


@FAST
@given(perturbed(corpus_prompts(CORPUS)))
def test_perturbed_prompts_are_non_empty(prompt: str) -> None:
    assert prompt.strip()


@FAST
@given(perturbed(st.just("?")))
def test_perturbed_never_blanks_a_prompt(prompt: str) -> None:
    # strip_punctuation would turn "?" into "": that edit must be skipped, not applied.
    assert prompt.strip()


def test_perturbed_skips_edits_that_would_blank() -> None:
    with pytest.raises(NoSuchExample):
        find(perturbed(st.just("?")), lambda s: "?" not in s, settings=settings(SEARCH, max_examples=300))


def test_perturbed_changes_text_and_shrinks_to_mildest_edit() -> None:
    assert _find(perturbed(st.just("Hello, World")), lambda s: s != "Hello, World") == "hello, world"
    assert _find(perturbed(st.just("a b")), lambda s: "\t" in s) == "a\tb"


# --- robustness_prompts ----------------------------------------------------------------------------------


def _is_emoji(ch: str) -> bool:
    return ord(ch) >= 0x1F000 or unicodedata.category(ch) == "So"


def _is_rtl(ch: str) -> bool:
    return unicodedata.bidirectional(ch) in {"R", "AL"}


def _is_cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return any(tag in name for tag in ("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))


ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}

ROBUSTNESS_CHECKS: dict[str, Callable[[str], bool]] = {
    "single_character": lambda s: len(s) == 1,
    "repeated_word": lambda s: len(s.split()) >= 2 and len(set(s.split())) == 1,
    "very_long": lambda s: len(s) >= 3000,
    "emoji": lambda s: any(_is_emoji(c) for c in s),
    "combining": lambda s: any(unicodedata.combining(c) for c in s),
    "rtl": lambda s: any(_is_rtl(c) for c in s),
    "cjk": lambda s: any(_is_cjk(c) for c in s),
    "zero_width": lambda s: any(c in ZERO_WIDTH for c in s),
}


@pytest.mark.parametrize("category", sorted(ROBUSTNESS_CHECKS))
def test_robustness_prompts_cover_category(category: str) -> None:
    assert ROBUSTNESS_CHECKS[category](_find(robustness_prompts(max_tokens=None), ROBUSTNESS_CHECKS[category]))


def test_robustness_prompts_are_capped_in_tokens_of_the_active_model() -> None:
    """The per-example budget: the longest inputs are cut to the cap, counted by the run's token counter."""
    from lmfacts.prompts.strategies import set_active_token_counter

    set_active_token_counter(lambda t: len(t.split()))  # planted: one token per word
    try:
        found = _find(robustness_prompts(max_tokens=50), lambda s: len(s.split()) >= 40)
        assert 40 <= len(found.split()) <= 50
    finally:
        set_active_token_counter(None)
    # outside a run: 4 characters per token
    assert len(_find(robustness_prompts(max_tokens=100), lambda s: len(s) >= 300)) <= 400


def test_robustness_categories_are_documented() -> None:
    assert ROBUSTNESS_CATEGORIES == ("single_character", "repeated_word", "very_long", "unusual_unicode")


@settings(max_examples=150, deadline=None, database=None)
@given(robustness_prompts())
def test_robustness_prompts_are_non_empty(prompt: str) -> None:
    assert isinstance(prompt, str)
    assert prompt.strip()
    assert len(prompt) <= 8000


def test_robustness_prompts_shrink_to_a_single_letter() -> None:
    assert _find(robustness_prompts(), lambda s: True) == "a"
    assert _find(repeated_words(), lambda s: True) == "the the"
    assert _find(single_characters(), lambda s: not s.isalnum()) == "!"


def test_very_long_prompts_bounds() -> None:
    longest = find(
        very_long_prompts(2000, 2100),
        lambda s: len(s) >= 2090,
        settings=settings(SEARCH, phases=[Phase.generate]),
    )
    assert 2000 <= len(longest) <= 2100
    assert len(_find(very_long_prompts(), lambda s: True)) >= 1995  # rstrip may drop a few spaces
    with pytest.raises(ValueError):
        very_long_prompts(10, 5)


@FAST
@given(unusual_unicode())
def test_unusual_unicode_is_non_ascii_and_non_empty(prompt: str) -> None:
    assert prompt.strip()
    assert not prompt.isascii()


# --- natural_prompts --------------------------------------------------------------------------------------


@FAST
@given(natural_prompts(CORPUS))
def test_natural_prompts_are_non_empty_and_within_budget(prompt: str) -> None:
    assert prompt.strip()
    assert len(prompt) <= DEFAULT_MAX_CHARS


@FAST
@given(natural_prompts(CORPUS, max_chars=40, count_tokens=lambda s: len(s.split()), max_tokens=4))
def test_natural_prompts_char_and_token_budgets(prompt: str) -> None:
    assert prompt.strip()
    assert len(prompt) <= 40
    assert len(prompt.split()) <= 4


def test_natural_prompts_shrink_to_short_plain_prompts() -> None:
    found = _find(natural_prompts(CORPUS), lambda s: "the" in s.lower())
    assert len(found) <= MEDIAN_CHARS / 4, (found, MEDIAN_CHARS)
    assert len(_find(natural_prompts(CORPUS), lambda s: True)) <= 3


def test_natural_prompts_include_spliced_and_perturbed_prompts() -> None:
    texts = set(CORPUS.texts)
    lowered = {t.lower() for t in texts}
    sentences = {sentence for t in texts for sentence in split_sentences(t)}
    perturbed_case = _find(natural_prompts(CORPUS), lambda s: s not in texts and s.lower() in lowered)
    assert perturbed_case not in texts
    spliced = _find(
        natural_prompts(CORPUS),
        lambda s: s not in texts and len(split_sentences(s)) >= 2 and set(split_sentences(s)) <= sentences,
    )
    assert spliced not in texts


def test_natural_prompts_need_both_token_arguments() -> None:
    with pytest.raises(ValueError, match="both"):
        natural_prompts(CORPUS, count_tokens=len)
    with pytest.raises(ValueError, match="both"):
        natural_prompts(CORPUS, max_tokens=5)
