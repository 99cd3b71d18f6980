"""Dependency errors name what failed, even where the client's exception has an empty repr."""

from __future__ import annotations

from tritonclient.utils import InferenceServerException

from resolution.errors import describe


def test_describe_names_type_and_message() -> None:
    assert describe(InferenceServerException("unexpected shape for input FEATURES")) == (
        "InferenceServerException: unexpected shape for input FEATURES"
    )
    assert describe(ConnectionError("refused")) == "ConnectionError: refused"
    assert describe(TimeoutError()) == "TimeoutError"
