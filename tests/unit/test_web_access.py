"""The worker's web views: loopback by default; anywhere else the entity views ask for a bearer token."""

from __future__ import annotations

import pytest

from settings import Settings
from streams.web_access import WebAccess, WebAccessError, bearer_headers, client_host, is_loopback


def test_loopback_by_default_and_open_there() -> None:
    settings = Settings.from_env({})
    assert settings.worker.web_host == "127.0.0.1"
    access = WebAccess(settings.worker.web_host, settings.worker.web_token)
    assert not access.asks_for_token
    assert access.allows(None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "worker.example"])
def test_binding_elsewhere_without_a_token_is_refused_at_start(host: str) -> None:
    with pytest.raises(WebAccessError, match="RESOLVER_WORKER_WEB_TOKEN"):
        WebAccess(host, "")


def test_binding_elsewhere_asks_for_the_exact_bearer_token() -> None:
    token = "s3cret-token-value"
    access = WebAccess("0.0.0.0", token)
    assert access.asks_for_token
    assert access.allows(f"Bearer {token}")
    assert access.allows(f"bearer {token} ")
    for header in [None, "", token, f"Basic {token}", f"Bearer {token[:-1]}", f"Bearer {token}x", "Bearer "]:
        assert not access.allows(header), header


def test_a_token_set_on_loopback_is_asked_for_too() -> None:
    access = WebAccess("127.0.0.1", "tok")
    assert not access.allows(None) and access.allows("Bearer tok")


def test_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")
    assert client_host("0.0.0.0") == "127.0.0.1" and client_host("10.1.2.3") == "10.1.2.3"
    assert bearer_headers("") == {} and bearer_headers("t") == {"Authorization": "Bearer t"}


def test_the_token_comes_from_the_environment_and_never_shows_in_settings() -> None:
    settings = Settings.from_env(
        {
            "RESOLVER_WORKER_WEB_HOST": "0.0.0.0",
            "RESOLVER_WORKER_WEB_TOKEN": "web-secret-1",
            "MILVUS_TOKEN": "root:milvus-secret-2",
            "RESOLVER_KAFKA_SASL_PASSWORD": "sasl-secret-3",
        }
    )
    assert settings.worker.web_host == "0.0.0.0" and settings.worker.web_token == "web-secret-1"
    printed = repr(settings)
    for secret in ("web-secret-1", "milvus-secret-2", "sasl-secret-3"):
        assert secret not in printed
