"""Catch ``-k`` used to select claim families: it matches substrings of whole test names, case-insensitively.

``pytest claims/ -k "AS or MA"`` reads like "the AS and MA families", but ``-k`` matches every test whose
name parts (module, function, parameter id) or markers contain ``as`` or ``ma`` anywhere: ``test_rs_basis``
contains ``as`` and ``tiny-gemma`` contains ``ma``, so RS-1…RS-4 run too. Markers select families exactly
(``-m "AS or MA"``; each claim test carries its family as a marker). :func:`family_keyword_strays` words a
warning when a ``-k`` expression names a family and selected tests of other families; the plugin issues it
once collection is done. Pure: no pytest or torch import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

_OPERATORS = {"and", "or", "not"}


def family_tokens(keyword: str, families: Iterable[str]) -> list[str]:
    """The words of the ``-k`` expression ``keyword`` that are exactly a claim family name (``AS``, ``ma``,
    ``MA-``), upper-cased, in order of appearance and without repeats. Claim ids (``RN-1``) and other words
    are not family names."""
    known = {f.upper() for f in families}
    out: list[str] = []
    for word in re.findall(r"[A-Za-z0-9_][\w.\[\]-]*", keyword or ""):
        if word.lower() in _OPERATORS:
            continue
        name = word.rstrip("-").upper()
        if name in known and name not in out:
            out.append(name)
    return out


def _where(token: str, nodeid: str) -> str | None:
    """The word of ``nodeid`` (split at ``/ : [ ] -``) that contains ``token`` case-insensitively."""
    for word in re.split(r"[/:\[\]\-.]+", nodeid):
        if token.lower() in word.lower():
            return word
    return None


def _intended(keyword: str, named: Sequence[str], family: str, nodeid: str) -> bool | None:
    """Whether ``keyword`` selects the test ``nodeid`` of claim family ``family`` when read as its author meant it:
    a family word (one of ``named``) selects exactly that family, any other word a test whose id contains it
    (case-insensitively, as ``-k`` matches), with ``and`` / ``or`` / ``not`` / parentheses as in ``-k``. None when
    the expression cannot be parsed (the caller then judges by family alone)."""
    tokens = re.findall(r"\(|\)|[^\s()]+", keyword or "")
    pos = 0

    def peek() -> str | None:
        return tokens[pos].lower() if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> bool:
        tok = take()
        if tok.lower() == "not":
            return not atom()
        if tok == "(":
            value = disjunction()
            if take() != ")":
                raise ValueError("unbalanced parentheses")
            return value
        if tok == ")" or tok.lower() in _OPERATORS:
            raise ValueError(f"unexpected {tok!r}")
        name = tok.rstrip("-").upper()
        return family.upper() == name if name in named else tok.lower() in nodeid.lower()

    def chain(op: str, operand: Callable[[], bool]) -> bool:  # every operand is parsed, then combined
        values = [operand()]
        while peek() == op:
            take()
            values.append(operand())
        return all(values) if op == "and" else any(values)

    def conjunction() -> bool:
        return chain("and", atom)

    def disjunction() -> bool:
        return chain("or", conjunction)

    try:
        value = disjunction()
    except (IndexError, ValueError):
        return None
    return value if pos == len(tokens) else None


def family_keyword_strays(keyword: str, selected: Sequence[tuple[str, str, str]],
                          families: Iterable[str]) -> str | None:
    """The warning for a ``-k`` expression that names claim families yet selected claims of other families.

    ``selected``: ``(claim id, family, nodeid)`` of every selected claim test; ``families``: the registered
    claim families. Returns None when ``keyword`` names no family, or when every selected test of another
    family is one the expression asks for by its other words (``-k "RN-1 or AS"`` asks for RN-1; ``-k "not AS"``
    for the others: :func:`_intended`); else one message naming the stray claims, the word of a test name the
    family name matched inside, and the ``-m`` expression that selects the families.
    """
    named = family_tokens(keyword, families)
    if not named:
        return None
    strays = [(cid, fam, nodeid) for cid, fam, nodeid in selected if fam.upper() not in named
              and not _intended(keyword, named, fam, nodeid)]
    if not strays:
        return None
    ids = sorted({cid for cid, _, _ in strays})
    because = next(((t, w) for t in named for _, _, nodeid in strays if (w := _where(t, nodeid))), None)
    why = f" ({because[0]!r} is inside {because[1]!r})" if because else ""
    shown = ", ".join(ids[:8]) + (f", … ({len(ids)} claims)" if len(ids) > 8 else "")
    return (f"-k {keyword!r} also selected claims of other families: {shown}. -k matches substrings of whole "
            f"test names, case-insensitively{why}. To select claim families use markers: "
            f"-m {_marker_expression(keyword, named)!r}.")


def _marker_expression(keyword: str, named: Sequence[str]) -> str:
    """The ``-m`` expression for the families of ``keyword``: the expression itself with each family word as its
    marker (``"MA and not RS"``) where it has no other words, else the named families joined by ``or``."""
    tokens = re.findall(r"\(|\)|[^\s()]+", keyword or "")
    out: list[str] = []
    for tok in tokens:
        name = tok.rstrip("-").upper()
        if tok in ("(", ")") or tok.lower() in _OPERATORS:
            out.append(tok.lower() if tok.lower() in _OPERATORS else tok)
        elif name in named:
            out.append(name)
        else:
            return " or ".join(named)
    return " ".join(out).replace("( ", "(").replace(" )", ")")
