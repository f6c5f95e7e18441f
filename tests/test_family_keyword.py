"""``-k`` naming claim families selects more than those families (``as`` is inside ``test_rs_basis``, ``ma``
inside ``tiny-gemma``): lmfacts warns, naming the stray claims, why they matched and the ``-m`` that selects the
families (was: ``pytest claims/ -k "AS or MA" --model minilm-l6`` silently ran RS-1…RS-4 too, 4 minutes)."""

from __future__ import annotations

from pathlib import Path

from lmfacts.selection import family_keyword_strays, family_tokens
from tests.helpers import run_pytest

FAMILIES = ("RN", "BF", "RS", "MA", "AS", "LL")
RS1 = ("RS-1", "RS", "claims/test_rs_basis.py::test_rs1_kurtosis_privileged_basis[RS-1-minilm-l6-cpu]")
AS1 = ("AS-1", "AS", "claims/test_as_sinks.py::test_as1_sink_rate[AS-1-minilm-l6-cpu]")
LL1 = ("LL-1", "LL", "claims/test_ll_logit_lens.py::test_ll1_kl_falls_with_depth[LL-1-tiny-gemma-cpu]")


def test_family_tokens_are_whole_family_words() -> None:
    assert family_tokens("AS or MA", FAMILIES) == ["AS", "MA"]
    assert family_tokens("ma- and tiny-gpt2", FAMILIES) == ["MA"]
    assert family_tokens("RN-1 and not RN-1p", FAMILIES) == []  # claim ids, not families
    assert family_tokens("minilm or basis", FAMILIES) == []


def test_strays_are_named_with_the_word_they_matched_inside() -> None:
    msg = family_keyword_strays("AS or MA", [RS1, AS1, LL1], FAMILIES)
    assert msg is not None and "RS-1" in msg and "LL-1" in msg and "AS-1" not in msg.split(":")[1]
    assert "'AS' is inside 'test_rs_basis'" in msg and "-m 'AS or MA'" in msg
    gemma = family_keyword_strays("MA-", [LL1], FAMILIES)
    assert gemma is not None and "'MA' is inside 'gemma'" in gemma


def test_no_warning_when_the_selection_is_what_was_named() -> None:
    assert family_keyword_strays("AS", [AS1], FAMILIES) is None
    assert family_keyword_strays("AS or RS", [AS1, RS1], FAMILIES) is None
    assert family_keyword_strays("RN-1", [RS1], FAMILIES) is None  # no family named
    assert family_keyword_strays("not AS", [RS1, LL1], FAMILIES) is None  # the others, on purpose
    assert family_keyword_strays("", [RS1], FAMILIES) is None


RN1 = ("RN-1", "RN", "claims/test_rn_norm_growth.py::test_rn1_exponential_growth[RN-1-tiny-llama-cpu]")


def test_claims_the_expression_asks_for_by_other_words_are_not_strays() -> None:
    """``-k "RN-1 or AS"`` asks for RN-1 by name: no warning about it, and no ``-m 'AS'`` advice that would drop it
    (was: 'also selected claims of other families: RN-1')."""
    assert family_keyword_strays("RN-1 or AS", [RN1, AS1], FAMILIES) is None
    assert family_keyword_strays("(AS or test_rn_norm) and tiny-llama", [RN1, AS1], FAMILIES) is None
    # the same expression still names a claim it did not ask for
    msg = family_keyword_strays("RN-1 or AS", [RN1, AS1, RS1], FAMILIES)
    assert msg is not None and "RS-1" in msg and "RN-1" not in msg.split(":")[1].split(".")[0], msg
    # 'and' with a word every test has does not make the family match intended ('tiny-gemma' contains 'ma')
    assert "LL-1" in (family_keyword_strays("MA and tiny-gemma", [LL1], FAMILIES) or "")


def test_not_is_read_as_written() -> None:
    """``not`` negates what follows; a stray selected despite it is still named, with ``-m`` the same expression."""
    msg = family_keyword_strays("MA and not RS", [LL1], FAMILIES)
    assert msg is not None and "LL-1" in msg and "-m 'MA and not RS'" in msg, msg
    paren = family_keyword_strays("(as or ma-) and not rn", [LL1, RS1], FAMILIES)
    assert paren is not None and "-m '(AS or MA) and not RN'" in paren, paren
    # an expression that does not parse: judged by family alone, as before
    assert "RS-1" in (family_keyword_strays("AS or (", [RS1], FAMILIES) or "")


def test_a_run_warns_at_collection(tmp_path: Path) -> None:
    base = ("claims/", "--collect-only", "-q", "--model", "tiny-gpt2")
    proc, seconds = run_pytest(*base, "-k", "AS or MA", report_dir=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert "lmfacts: -k 'AS or MA' also selected claims of other families: RS-1, RS-2, RS-3, RS-4" in out, out
    assert "FamilyKeywordWarning" in out and "-m 'AS or MA'" in out
    exact, _ = run_pytest(*base, "-m", "AS or MA", report_dir=tmp_path)
    assert "also selected" not in exact.stdout + exact.stderr
    assert seconds < 60, seconds
