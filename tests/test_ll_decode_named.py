"""The logit lens decodes through the head's output transform (9c02e66); what lmfacts says about it does too."""

from __future__ import annotations


def test_lens_readout_and_ll_conventions_name_the_output_transform() -> None:
    """The lens decodes through the head's output transform (Gemma 2 soft-capping, Granite logits_scaling); the
    premise statement (claims show, skip evidence) and LL-1/LL-2's ``decode`` convention say so."""
    import inspect

    import claims.test_ll_logit_lens as ll
    from lmfacts.premises import PREMISES

    assert "output transform" in PREMISES["lens_readout"].statement
    assert "output transform" in inspect.getsource(ll._conventions)
