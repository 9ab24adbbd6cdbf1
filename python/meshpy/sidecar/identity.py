"""Keeps the proxy supplied with a current SPIFFE certificate from the control plane's CA.

The key is made by the proxy core (``_core.generate_csr``) and never leaves the process;
the CA sees only the CSR. A certificate is renewed at about two thirds of its lifetime,
with jitter so that sidecars started together do not renew together. When the CA cannot
be reached the proxy keeps serving with the certificate it has and the agent retries
with backoff, before and after that certificate expires, until the CA answers again.
Each new certificate comes with the trust bundle, which is how a new root reaches every
sidecar before leaves signed under it appear (root rotation).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshpy import _core
from meshpy.sidecar.backoff import Backoff
from meshpy.sidecar.controlplane import ControlPlaneClient, ControlPlaneError
from meshpy.sidecar.state import SavedIdentity

__all__ = ["Certificate", "IdentityAgent", "IdentityTarget"]

log = logging.getLogger("meshpy.sidecar.identity")

_RENEW_AT = (0.6, 0.72)
"""Renew after this fraction (drawn uniformly) of the time the certificate had left."""
_MIN_RENEW_S = 1.0


class IdentityTarget(Protocol):
    """What the agent feeds: the proxy core's ``set_identity``."""

    def set_identity(self, chain_pem: str, key_pem: str, roots_pem: str) -> Any: ...


@dataclass(frozen=True)
class Certificate:
    """The certificate the proxy runs with."""

    identity: str
    serial: str
    not_before: float
    not_after: float
    received_at: float


@dataclass
class IdentityAgent:
    """Gets, installs and renews the certificate of ``namespace``/``service``'s sidecar."""

    client: ControlPlaneClient
    proxy: IdentityTarget
    namespace: str
    service: str
    instance: str | None = None
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    backoff: Backoff = field(default_factory=Backoff)
    current: Certificate | None = None
    on_installed: Callable[[SavedIdentity], None] | None = None
    """Called with the PEMs of each certificate put in force (to save them)."""
    _trust_domain: str | None = None

    def spiffe_id(self) -> str:
        """``spiffe://<trust domain>/ns/<namespace>/sa/<service>``; asks the CA once."""
        if self._trust_domain is None:
            bundle = self.client.request("GET", "/api/v1/identity/trust-bundle").json()
            self._trust_domain = str(bundle["trust_domain"])
        return f"spiffe://{self._trust_domain}/ns/{self.namespace}/sa/{self.service}"

    def renew(self) -> Certificate:
        """One attempt: new key and CSR, signed by the CA, installed in the proxy.

        Raises ControlPlaneError (CA unreachable or refusing) or ``_core.IdentityError``
        (the proxy refused what the CA sent); the proxy keeps its old certificate either way.
        """
        key_pem, csr_pem = _core.generate_csr(self.spiffe_id())
        answer = self.client.request(
            "POST",
            "/api/v1/identity/certificates",
            body={"csr": csr_pem, "instance": self.instance},
        ).json()
        installed = self.proxy.set_identity(
            answer["certificate_chain"], key_pem, answer["trust_bundle"]
        )
        cert = Certificate(
            identity=str(installed["identity"]),
            serial=str(installed["serial"]),
            not_before=float(installed["not_before"]),
            not_after=float(installed["not_after"]),
            received_at=self.clock(),
        )
        self.current = cert
        if self.on_installed is not None:
            self.on_installed(
                SavedIdentity(answer["certificate_chain"], key_pem, answer["trust_bundle"])
            )
        return cert

    def renewal_delay(self, cert: Certificate) -> float:
        """Seconds from now until ``cert`` should be renewed (about 2/3 of its time left)."""
        left = cert.not_after - cert.received_at
        renew_at = cert.received_at + left * self.rng.uniform(*_RENEW_AT)
        return max(_MIN_RENEW_S, renew_at - self.clock())

    def run(
        self,
        stop: threading.Event,
        on_renewed: Callable[[Certificate], None] | None = None,
    ) -> None:
        """Renew until ``stop`` is set; the first attempt is at once."""
        delay = 0.0
        while not stop.wait(delay):
            try:
                cert = self.renew()
            except (ControlPlaneError, _core.MeshpyError, KeyError, ValueError) as err:
                if stop.is_set():
                    return
                at_least = getattr(err, "retry_after", None) or 0.0
                delay = self._retry_delay(at_least)
                log.warning("certificate renewal failed (%s); next try in %.1fs", err, delay)
                continue
            self.backoff.reset()
            delay = self.renewal_delay(cert)
            log.info(
                "identity %s, certificate %s valid until %s; renewing in %.0fs",
                cert.identity,
                cert.serial,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cert.not_after)),
                delay,
            )
            if on_renewed is not None:
                on_renewed(cert)

    def _retry_delay(self, at_least: float) -> float:
        delay = self.backoff.next(at_least)
        if self.current is not None:
            # Keep a few tries before the current certificate runs out.
            left = self.current.not_after - self.clock()
            if left > 0:
                delay = min(delay, max(_MIN_RENEW_S, left / 4))
        return delay
