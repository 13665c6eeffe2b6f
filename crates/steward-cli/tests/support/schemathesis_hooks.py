"""Loaded by schemathesis through SCHEMATHESIS_HOOKS for Steward's fuzz run (tests/schemathesis.rs).

CPython 3.11 (the Python of our machines) can raise `SystemError: AST constructor recursion
depth mismatch` when Hypothesis parses a large source file only to describe a lambda in a
strategy's repr; schemathesis then reports a runtime error for the operation being generated.
The description is cosmetic, so fall back to Hypothesis's own placeholder instead of crashing.
Nothing about the requests sent or the checks made changes.
"""

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _description_or_placeholder(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _description_or_placeholder
