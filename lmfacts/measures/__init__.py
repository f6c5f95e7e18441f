"""Claim measurements factored out of the claim tests, so planted-truth tests can call them directly.

Each ``measure_*`` function takes a loaded model and/or a probe result plus the resolved
expectation parameters, and returns a plain dict of measured values. The claim tests in
``claims/`` record these dicts and apply the predicate; ``tests/`` call the same functions on
models with a known, planted answer.
"""
