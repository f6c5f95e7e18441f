"""Tokenise prompts into padded batches with masks that separate BOS, padding and content.

Padding follows the tokenizer's side (left or right). Each prompt is tokenised on its own, so the
masks come from known lengths rather than from guessing which ids are padding (pad == eos for
several models, which would mistake a genuine trailing EOS for padding).

Position classes (the class map of a batch, and of :func:`lmfacts.measures.rn.single_prompt_pass`)
say what each position *is*, from its place and its id:

* ``pad`` (:data:`PAD`): padding, known from the prompt lengths (never from ids).
* ``bos`` (:data:`BOS`): the BOS token the tokenizer prepended, i.e. the first real position of a
  prompt run with ``prepend_bos`` (with left padding that is not index 0). In a causal model it
  attends only to itself, so its residual is the same in every prompt: RN-2 relies on that.
* ``bos_mid`` (:data:`BOS_MID`): the BOS id anywhere else, i.e. a BOS token that came from the
  prompt's *text* (``<|endoftext|>`` between documents of web text; or at position 0 when no BOS is
  prepended). It is not content (it is a control token the model was trained to treat specially),
  and it is not pooled with ``bos`` either: it attends to the text before it, so its residual
  differs from prompt to prompt, which would break RN-2's "identical across prompts" check and
  mix two different populations into the BOS trajectory.
* ``special`` (:data:`SPECIAL`): any other special token of the tokenizer (EOS, SEP, CLS, PAD,
  MASK and additional special tokens), wherever it occurs: the [SEP] a BERT tokenizer appends, an
  ``<|im_end|>`` written in the text. The unknown-token id is *not* special here: WordPiece and
  SentencePiece tokenizers without byte fallback emit it for real text they cannot spell, so it
  stands for content.
* ``content`` (:data:`CONTENT`): every other real position.

Statistics "over content" (RN-1, RN-3, BF-*, RS-*) therefore exclude bos, bos_mid, special and pad.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

# Position classes in a batch's class map (see the module docstring).
PAD, BOS, CONTENT, BOS_MID, SPECIAL = 0, 1, 2, 3, 4
CLASS_NAMES: dict[str, int] = {"pad": PAD, "bos": BOS, "content": CONTENT, "bos_mid": BOS_MID, "special": SPECIAL}


class PromptError(ValueError):
    """A prompt the probe cannot use (for example an empty one)."""


class OutOfVocabularyError(ValueError):
    """The tokenizer produced an id the model's embedding has no row for (id >= d_vocab)."""


@dataclass(frozen=True)
class SpecialIds:
    """The ids that are not content wherever they occur: the BOS id and the other special ids."""

    bos: int | None
    other: frozenset[int] = frozenset()


def special_ids(bridge) -> SpecialIds:
    """The BOS id and the other special-token ids of ``bridge``'s tokenizer (see the module docstring).

    The BOS id is the tokenizer's ``bos_token_id``; encoders (bidirectional attention) use their
    ``cls_token_id`` (what they prepend) when they have one, as :mod:`lmfacts.models.metadata` does.
    """
    tok = getattr(bridge, "tokenizer", None)
    if tok is None:
        return SpecialIds(None)
    encoder = getattr(bridge.cfg, "attention_dir", "causal") == "bidirectional"
    cls = getattr(tok, "cls_token_id", None)
    bos = cls if encoder and cls is not None else getattr(tok, "bos_token_id", None)
    ids = {int(i) for i in (getattr(tok, "all_special_ids", None) or []) if i is not None}
    ids.discard(getattr(tok, "unk_token_id", None))
    if bos is not None:
        ids.discard(int(bos))
    return SpecialIds(None if bos is None else int(bos), frozenset(ids))


def position_classes(ids: Sequence[int] | torch.Tensor, *, prepend_bos: bool, specials: SpecialIds) -> torch.Tensor:
    """Class (:data:`BOS`, :data:`BOS_MID`, :data:`SPECIAL` or :data:`CONTENT`) of each real position of one prompt.

    ``ids`` are the prompt's token ids without padding. Returns an int8 tensor of the same length.
    """
    t = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    classes = torch.full(t.shape, CONTENT, dtype=torch.int8)
    if specials.other:
        classes[torch.isin(t, torch.tensor(sorted(specials.other), dtype=torch.long))] = SPECIAL
    if specials.bos is not None:
        classes[t == specials.bos] = BOS_MID
    if prepend_bos and t.numel():
        classes[0] = BOS
    return classes


def class_counts(classes: torch.Tensor) -> dict[str, int]:
    """Number of positions of each class (keys of :data:`CLASS_NAMES`) in a class map."""
    return {name: int((classes == c).sum()) for name, c in CLASS_NAMES.items()}


@dataclass
class Batch:
    """One padded batch: token ids, attention mask and the class (see the module docstring) of every position."""

    tokens: torch.Tensor  # [b, p] int64
    attention_mask: torch.Tensor  # [b, p] int64, 1 = real token
    classes: torch.Tensor  # [b, p] int8
    lengths: list[int]
    texts: list[str]
    truncated: list[int] = field(default_factory=list)  # indices (in this batch) of truncated prompts

    @property
    def content(self) -> torch.Tensor:
        """Boolean mask of content positions (real, not BOS, not a special token)."""
        return self.classes == CONTENT


def _d_vocab(bridge) -> int | None:
    d = getattr(getattr(bridge, "cfg", None), "d_vocab", None)
    return int(d) if isinstance(d, int) and d > 0 else None


def is_encoder(bridge) -> bool:
    """True for a bridge with bidirectional attention (``cfg.attention_dir``: BERT, RoBERTa)."""
    return getattr(getattr(bridge, "cfg", None), "attention_dir", "causal") == "bidirectional"


def token_ids(bridge, text: str, *, prepend_bos: bool) -> list[int]:
    """Token ids of ``text`` as the model sees them, untruncated: ``bridge.to_tokens``, except that an
    encoder keeps the closing token its tokenizer appends.

    TransformerBridge strips a trailing EOS whenever it detects that the tokenizer appends one
    (``cfg.tokenizer_appends_eos``), which is right for decoders such as OLMo, whose EOS ends a document.
    An encoder's tokenizer appends its separator, and for RoBERTa (and its descendants) the separator
    *is* the EOS token ``</s>``: stripped, every RoBERTa prompt would lose the ``</s>`` it was pre-trained
    with, while BERT keeps its ``[SEP]`` (not an EOS), and AS-1's encoder sink set ``sep`` would be empty.
    So for a bidirectional bridge the ids are the tokenizer's whole template (``<s> … </s>``, ``[CLS] …
    [SEP]``), as in pre-training; decoders are unchanged.
    """
    cfg = bridge.cfg
    keep_closing = is_encoder(bridge) and bool(getattr(cfg, "tokenizer_appends_eos", False))
    if not keep_closing:
        return bridge.to_tokens(text, prepend_bos=prepend_bos, truncate=False, move_to_device=False)[0].tolist()
    cfg.tokenizer_appends_eos = False
    try:
        return bridge.to_tokens(text, prepend_bos=prepend_bos, truncate=False, move_to_device=False)[0].tolist()
    finally:
        cfg.tokenizer_appends_eos = True


def tokenize_one(bridge, text: str, *, prepend_bos: bool, n_ctx: int) -> tuple[list[int], bool]:
    """Token ids of one prompt (:func:`token_ids`), truncated to ``n_ctx``; returns (ids, was_truncated).

    An encoder's prompt that is too long keeps its closing special token (``[SEP]``, ``</s>``) as the
    last of its ``n_ctx`` ids, as the tokenizer's own truncation does: the text is cut, not the template.

    Raises :class:`PromptError` for a prompt that is empty or only whitespace, and
    :class:`OutOfVocabularyError` when an id falls outside the model's vocabulary (a special token
    the tokenizer added past ``d_vocab``), so no such id ever reaches the embedding.
    """
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"empty prompt {text!r}: every prompt needs at least one non-space character")
    ids = token_ids(bridge, text, prepend_bos=prepend_bos)
    truncated = len(ids) > n_ctx
    if truncated and n_ctx >= 2 and is_encoder(bridge) and ids[-1] in special_ids(bridge).other:
        ids = ids[:n_ctx - 1] + ids[-1:]
    ids = ids[:n_ctx]
    d_vocab = _d_vocab(bridge)
    if d_vocab is not None:
        bad = sorted({i for i in ids if not 0 <= i < d_vocab})
        if bad:
            tok = getattr(bridge, "tokenizer", None)
            names = tok.convert_ids_to_tokens(bad) if tok is not None else bad
            raise OutOfVocabularyError(
                f"token id(s) {bad} ({names}) of prompt {text[:40]!r} are outside the model's vocabulary "
                f"(d_vocab {d_vocab}): the tokenizer has special tokens the model has no embedding for")
    return ids, truncated


class NoContentTokensError(ValueError):
    """No prompt of the run has a content position on this model: its tokenizer turns every prompt into
    special tokens only (``"\\u200b"`` → ``[CLS] [SEP]`` with a WordPiece tokenizer that drops invisible
    characters). Every corpus statistic is over content tokens, so nothing can be judged: an ``error``."""


@dataclass(frozen=True)
class ContentCensus:
    """How many prompts have no content position on a model, with a few of them as examples, and how many content
    positions are the tokenizer's unknown token.

    ``examples``: up to 3 ``(prompt, tokens)`` pairs, the prompt's first 40 characters and its token strings.
    ``n_unknown``: content positions whose id is the unknown token's (text the vocabulary cannot spell: an English
    WordPiece vocabulary on Chinese prompts); ``unknown_examples``: up to 3 prompts (first 40 characters) with one.
    """

    n_prompts: int
    n_content_tokens: int
    without_content: tuple[int, ...]
    examples: tuple[tuple[str, tuple[str, ...]], ...]
    n_unknown: int = 0
    unknown_examples: tuple[str, ...] = ()

    @property
    def unknown_share(self) -> float:
        """Share of content positions that are the unknown token (0 without content)."""
        return self.n_unknown / self.n_content_tokens if self.n_content_tokens else 0.0

    def describe_unknown(self) -> str:
        """One line: how many content tokens are the unknown token, with example prompts."""
        shown = "; ".join(repr(t) for t in self.unknown_examples)
        return (f"{self.n_unknown} of {self.n_content_tokens} content tokens ({100 * self.unknown_share:.1f}%) are the "
                f"tokenizer's unknown token (text its vocabulary cannot spell, e.g. in {shown}): every statistic "
                "over content tokens reads the unknown token's one embedding at those positions")

    def describe(self) -> str:
        """One line: how many prompts have no content token, e.g. ``'\\u200b' → ['[CLS]', '[SEP]']``."""
        shown = "; ".join(f"{text!r} → {list(tokens)}" for text, tokens in self.examples)
        return (f"{len(self.without_content)} of {self.n_prompts} prompts have no content token on this model "
                f"(the tokenizer turns each into special tokens only, e.g. {shown})")


def content_census(bridge, texts: Sequence[str], *, prepend_bos: bool, n_ctx: int) -> ContentCensus:
    """Tokenise ``texts`` as the probe does (:func:`tokenize_one`, :func:`position_classes`) and count the
    prompts without any content position (module docstring: not BOS, not a special token, not padding).

    Also counts the content positions that are the tokenizer's unknown token (``n_unknown``). Tokenisation
    only, no forward pass. Raises what :func:`tokenize_one` raises for an unusable prompt.
    """
    specials = special_ids(bridge)
    tok = getattr(bridge, "tokenizer", None)
    unk = getattr(tok, "unk_token_id", None) if tok is not None else None
    empty: list[int] = []
    examples: list[tuple[str, tuple[str, ...]]] = []
    unknown_examples: list[str] = []
    total = n_unknown = 0
    for i, text in enumerate(texts):
        ids, _ = tokenize_one(bridge, text, prepend_bos=prepend_bos, n_ctx=n_ctx)
        content = position_classes(ids, prepend_bos=prepend_bos, specials=specials) == CONTENT
        n = int(content.sum())
        total += n
        if unk is not None and n:
            k = int((content & (torch.as_tensor(ids, dtype=torch.long).reshape(-1) == int(unk))).sum())
            n_unknown += k
            if k and len(unknown_examples) < 3:
                unknown_examples.append(text[:40])
        if n == 0:
            empty.append(i)
            if len(examples) < 3:
                names = tok.convert_ids_to_tokens(ids) if tok is not None else ids
                examples.append((text[:40], tuple(str(t) for t in names)))
    return ContentCensus(len(texts), total, tuple(empty), tuple(examples), n_unknown, tuple(unknown_examples))


def in_vocab_pad_id(bridge, pad_id: int | None) -> int:
    """``pad_id`` if the model can embed it, else 0.

    Padding positions are masked and classed from the known lengths, so any in-vocabulary id will
    do; an out-of-vocabulary pad id (a tokenizer whose ``<pad>`` was added past ``d_vocab``) would
    crash the embedding lookup.
    """
    d_vocab = _d_vocab(bridge)
    if pad_id is None or pad_id < 0 or (d_vocab is not None and pad_id >= d_vocab):
        return 0
    return int(pad_id)


def make_batch(bridge, texts: Sequence[str], *, prepend_bos: bool, n_ctx: int, padding_side: str,
               pad_id: int, device: str | torch.device) -> Batch:
    """Tokenise ``texts`` and pad them into one :class:`Batch` on ``device``.

    ``pad_id`` is replaced by an in-vocabulary id when the model cannot embed it (see :func:`in_vocab_pad_id`).
    """
    rows: list[list[int]] = []
    truncated: list[int] = []
    for i, text in enumerate(texts):
        ids, was_truncated = tokenize_one(bridge, text, prepend_bos=prepend_bos, n_ctx=n_ctx)
        if was_truncated:
            truncated.append(i)
        rows.append(ids)
    return pad_rows(bridge, rows, texts, truncated, prepend_bos=prepend_bos, padding_side=padding_side,
                    pad_id=pad_id, device=device)


BATCH_COST_TOKENS = 64  # the fixed cost of one forward pass, in padded-token equivalents (plan_batches)


def plan_batches(lengths: Sequence[int], *, batch_tokens: int, max_prompts: int | None = None,
                 first: int | None = 0, batch_cost: int = BATCH_COST_TOKENS) -> list[list[int]]:
    """Group prompt indices into batches by length, each holding at most ``batch_tokens`` padded tokens.

    Prompts are sorted by token length (stable) and cut into consecutive runs: a run of b prompts
    whose longest has n tokens costs b·n padded tokens, which must stay ≤ ``batch_tokens`` (a single
    prompt longer than the budget goes alone), and ``max_prompts`` caps b. Among such cuts the one
    with the fewest padded tokens plus ``batch_cost`` per batch is chosen (dynamic programming over
    the sorted lengths, O(prompts × prompts per batch)). The batch holding prompt ``first`` (default
    the corpus' first prompt, so statistics "relative to the first prompt" keep their meaning) is
    moved to the front. Returns lists of indices into ``lengths``; every index appears once. Raises
    ValueError for a non-positive budget.
    """
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be positive, got {batch_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[i]: cost of batching the i shortest prompts
    cut = [0] * (n + 1)
    for i in range(1, n + 1):
        width = lengths[order[i - 1]]  # the longest of any run ending at i
        j = i - 1
        while j >= 0:
            b = i - j
            if b > 1 and (b * width > batch_tokens or (max_prompts and b > max_prompts)):
                break
            cost = best[j] + b * width + batch_cost
            if cost < best[i]:
                best[i], cut[i] = cost, j
            j -= 1
    batches: list[list[int]] = []
    i = n
    while i > 0:
        batches.append(order[cut[i]:i])
        i = cut[i]
    batches.reverse()
    if first is not None:
        k = next((j for j, b in enumerate(batches) if first in b), None)
        if k:
            batches.insert(0, batches.pop(k))
    return batches


def padding_stats(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> dict[str, float]:
    """Real and padded token counts of ``batches`` (lists of indices into ``lengths``) and the overhead.

    ``overhead`` = (padded − real) / real: 0.69 means the forward passes compute 69 % more positions
    than the corpus holds.
    """
    real = int(sum(lengths))
    padded = int(sum(len(b) * max(lengths[i] for i in b) for b in batches if b))
    return {"real_tokens": real, "padded_tokens": padded, "n_batches": len(batches),
            "overhead": (padded - real) / real if real else 0.0}


def pad_rows(bridge, rows: Sequence[Sequence[int]], texts: Sequence[str], truncated: Sequence[int], *,
             prepend_bos: bool, padding_side: str, pad_id: int, device: str | torch.device) -> Batch:
    """Pad already tokenised ``rows`` (ids of ``texts``) into one :class:`Batch` on ``device``."""
    rows = [list(r) for r in rows]
    truncated = list(truncated)
    specials = special_ids(bridge)
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), in_vocab_pad_id(bridge, pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    classes = torch.full((len(rows), width), PAD, dtype=torch.int8)
    for i, ids in enumerate(rows):
        n = len(ids)
        sl = slice(width - n, width) if padding_side == "left" else slice(0, n)
        row = torch.tensor(ids, dtype=torch.long)
        tokens[i, sl] = row
        mask[i, sl] = 1
        classes[i, sl] = position_classes(row, prepend_bos=prepend_bos, specials=specials)
    return Batch(tokens.to(device), mask.to(device), classes.to(device), [len(r) for r in rows], list(texts),
                 truncated)
