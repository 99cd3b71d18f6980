"""Who may read the worker's web views.

On loopback (the default) the views are open to this machine, as before. Bound anywhere else
(a Prometheus on another host scraping ``/metrics``), ``/state`` and ``/entity`` -- the whole
catalogue's entity state -- ask for ``RESOLVER_WORKER_WEB_TOKEN`` as a bearer token, while
``/health`` and ``/metrics`` stay open: they carry no catalogue data and scrapers expect them.
"""

from __future__ import annotations

import hmac
import ipaddress


class WebAccessError(ValueError):
    """The web settings would expose the entity views without a token."""


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, it is not ours to assume


def client_host(bind_host: str) -> str:
    """Where a client on this machine reaches a worker bound to ``bind_host``."""
    wildcard = bind_host.strip() in ("", "0.0.0.0", "::", "[::]")
    return "127.0.0.1" if wildcard or is_loopback(bind_host) else bind_host


def bearer_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class WebAccess:
    """The check the entity views make; a token, once set, is asked for on loopback too."""

    def __init__(self, bind_host: str, token: str) -> None:
        if not token and not is_loopback(bind_host):
            raise WebAccessError(
                f"the worker's web views would listen on {bind_host!r}, not loopback, with /state and /entity"
                " open: set RESOLVER_WORKER_WEB_TOKEN (they then ask for it as a bearer token)"
                " or keep RESOLVER_WORKER_WEB_HOST=127.0.0.1"
            )
        self._token = token.encode()

    @property
    def asks_for_token(self) -> bool:
        return bool(self._token)

    def allows(self, authorization: str | None) -> bool:
        """True for the ``Authorization`` header value a request may read the entity views with."""
        if not self._token:
            return True
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Constant time: how much of a guess matched must not show in the response time.
        return hmac.compare_digest(credentials.strip().encode(), self._token)
