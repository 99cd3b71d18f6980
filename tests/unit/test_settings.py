"""Settings from the environment, and what the local stack derives from them."""

from __future__ import annotations

import pytest

from deploy.stack import LocalStack
from settings import Settings


def test_triton_loads_the_workers_models_unless_told_otherwise() -> None:
    # "auto": the text model chosen by measurement (content_resolver/encoder_choice.py).
    assert Settings.from_env({}).stack.triton_models == "auto,matcher"
    chosen = Settings.from_env({"RESOLVER_WORKER_TEXT_MODEL": "text_encoder_int8"})
    assert chosen.stack.triton_models == "text_encoder_int8,matcher"
    flags = LocalStack(chosen.stack)._triton_model_flags()
    assert flags == ["--model-control-mode=explicit", "--load-model=text_encoder_int8", "--load-model=matcher"]
    # The cross-encoder turned on: Triton loads it too.
    refined = Settings.from_env({"RESOLVER_WORKER_CROSS_ENCODER_MODEL": "cross_encoder"})
    assert refined.stack.triton_models == "auto,matcher,cross_encoder"
    everything = Settings.from_env({"RESOLVER_STACK_TRITON_MODELS": "*"})
    # The whole repository, still under explicit model control (promote and rollback need it).
    assert LocalStack(everything.stack)._triton_model_flags() == ["--model-control-mode=explicit", "--load-model=*"]


def test_a_typed_field_with_a_bad_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="RESOLVER_WORKER_PIPELINE_CHUNK='many': expected int"):
        Settings.from_env({"RESOLVER_WORKER_PIPELINE_CHUNK": "many"})
