"""lmfacts: published findings about language-model internals as an executable pytest suite.

Importing this package is light: it never imports torch or transformer_lens. Heavy modules
(model loading, the probe, weight views) are imported when a model is first needed.
"""

from lmfacts.claims import CLAIMS, ClaimSpec, claim

__version__ = "0.1.0"

__all__ = ["CLAIMS", "ClaimSpec", "claim", "__version__"]
