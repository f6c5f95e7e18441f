"""Prompt corpora and Hypothesis prompt strategies.

``lmfacts.prompts.corpus`` loads prompt sets (the built-in corpus or a user's ``.txt``/``.jsonl``
file); ``lmfacts.prompts.strategies`` turns them into Hypothesis strategies. Neither imports torch.
"""

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
from lmfacts.prompts.strategies import (
    corpus_prompts,
    natural_prompts,
    perturbed,
    robustness_prompts,
    spliced_prompts,
    token_truncated,
    truncated,
    word_windows,
)

__all__ = [
    "BUILTIN_CORPUS_PATH",
    "Corpus",
    "CorpusError",
    "CorpusFileNotFoundError",
    "Prompt",
    "corpus_hash",
    "corpus_prompts",
    "load_builtin_corpus",
    "load_corpus_file",
    "natural_prompts",
    "perturbed",
    "robustness_prompts",
    "spliced_prompts",
    "token_truncated",
    "truncated",
    "word_windows",
]
