"""Tokenise prompts into padded batches with masks that separate BOS, padding and content.

Padding follows the tokenizer's side (left or right). Each prompt is tokenised on its own, so the
masks come from known lengths rather than from guessing which ids are padding (pad == eos for
several models, which would mistake a genuine trailing EOS for padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

# Position classes in a batch's class map.
PAD, BOS, CONTENT = 0, 1, 2


class PromptError(ValueError):
    """A prompt the probe cannot use (for example an empty one)."""


@dataclass
class Batch:
    """One padded batch: token ids, attention mask and the class (PAD/BOS/CONTENT) of every position."""

    tokens: torch.Tensor  # [b, p] int64
    attention_mask: torch.Tensor  # [b, p] int64, 1 = real token
    classes: torch.Tensor  # [b, p] int8
    lengths: list[int]
    texts: list[str]
    truncated: list[int] = field(default_factory=list)  # indices (in this batch) of truncated prompts

    @property
    def content(self) -> torch.Tensor:
        """Boolean mask of content positions (real, not BOS)."""
        return self.classes == CONTENT


def tokenize_one(bridge, text: str, *, prepend_bos: bool, n_ctx: int) -> tuple[list[int], bool]:
    """Token ids of one prompt, truncated to ``n_ctx``; returns (ids, was_truncated).

    Raises :class:`PromptError` for a prompt that is empty or only whitespace.
    """
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"empty prompt {text!r}: every prompt needs at least one non-space character")
    ids = bridge.to_tokens(text, prepend_bos=prepend_bos, truncate=False, move_to_device=False)[0].tolist()
    truncated = len(ids) > n_ctx
    return ids[:n_ctx], truncated


def make_batch(bridge, texts: Sequence[str], *, prepend_bos: bool, n_ctx: int, padding_side: str,
               pad_id: int, device: str | torch.device) -> Batch:
    """Tokenise ``texts`` and pad them into one :class:`Batch` on ``device``."""
    rows: list[list[int]] = []
    truncated: list[int] = []
    for i, text in enumerate(texts):
        ids, was_truncated = tokenize_one(bridge, text, prepend_bos=prepend_bos, n_ctx=n_ctx)
        if was_truncated:
            truncated.append(i)
        rows.append(ids)
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    classes = torch.full((len(rows), width), PAD, dtype=torch.int8)
    for i, ids in enumerate(rows):
        n = len(ids)
        sl = slice(width - n, width) if padding_side == "left" else slice(0, n)
        tokens[i, sl] = torch.tensor(ids, dtype=torch.long)
        mask[i, sl] = 1
        classes[i, sl] = CONTENT
        if prepend_bos:
            classes[i, sl.start] = BOS
    return Batch(tokens.to(device), mask.to(device), classes.to(device), [len(r) for r in rows], list(texts),
                 truncated)
