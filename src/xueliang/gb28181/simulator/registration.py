"""Registering the simulated device: REGISTER with digest auth, refresh, back-off, redirects, and
the keepalives that tell the platform it is still there.

- REGISTER with digest auth (401 -> Authorization), refresh before expiry, retry with
  exponential back-off after a 4xx, a timeout or a lost registration; a 302 is followed to
  the access node its Contact names (the front of a cluster);
- a Keepalive MESSAGE every ``keepalive_interval`` seconds once registered; three unanswered in a
  row (or a 4xx: the server forgot the device) mean registering again.
"""

from __future__ import annotations

import contextlib

from xueliang.gb28181 import manscdp
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.simulator.core import DeviceCore
from xueliang.gb28181.simulator.model import USER_AGENT, Address, Output, Registration
from xueliang.gb28181.sip import (
    DigestChallenge,
    NameAddr,
    SipResponse,
    SipUri,
    authorize,
    make_request,
)


class RegistrationMixin(DeviceCore):
    """REGISTER and keepalive, on the state :class:`DeviceCore` holds."""

    def _send_register(self, now: float, challenge: DigestChallenge | None) -> list[Output]:
        cfg = self.config
        reg = self._reg
        reg.cseq += 1
        me = NameAddr(SipUri(host=cfg.domain, user=cfg.device_id))
        expires = 0 if reg.unregistering else cfg.expires
        headers = [("User-Agent", USER_AGENT), ("Expires", str(expires))]
        if cfg.gb_version != "2.0":
            headers.append(("X-GB-Ver", cfg.gb_version))
        if challenge is not None:
            creds = authorize(
                challenge,
                username=cfg.device_id,
                password=cfg.password,
                method="REGISTER",
                uri=self._server_uri,
            )
            headers.append(("Authorization", creds.to_header()))
        request = make_request(
            "REGISTER",
            self._server_uri,
            via=self._via(),
            from_=me.with_tag(reg.from_tag),
            to=me,
            call_id=reg.call_id,
            cseq=reg.cseq,
            contact=self._contact(),
            headers=headers,
        )
        return self._start_client(request, "register", now)

    def _on_register_response(self, response: SipResponse, now: float) -> list[Output]:
        reg = self._reg
        if response.status < 200:
            return []
        if response.status in (401, 407):
            challenge = _challenge_in(response)
            # The same nonce challenged again (not stale) means a wrong password: give up and
            # back off instead of hammering the server with the same digest.
            if (
                challenge is not None
                and (challenge.nonce not in reg.challenged or challenge.stale)
                and len(reg.challenged) < 3
            ):
                reg.challenged = (*reg.challenged, challenge.nonce)
                return self._send_register(now, challenge)
        if reg.unregistering:
            reg.unregistering = False
            return []
        if 300 <= response.status < 400:
            return self._follow_redirect(response, now)
        if not response.success:
            return self._register_failed(now)
        self._failures = 0
        self.counters.registrations += 1
        granted = response.registration_expires or response.expires or self.config.expires
        reg.expires = granted
        # Refresh well before expiry: at 80 %, or a few seconds early for short lifetimes.
        self._register_at = now + max(1.0, min(granted * 0.8, granted - 5.0))
        if not self.registered:
            self.registered = True
            self._keepalive_failures = 0
            self._keepalive_at = now + self.config.keepalive_interval
        return []

    def _follow_redirect(self, response: SipResponse, now: float) -> list[Output]:
        """A 3xx (the front of a cluster sending the fleet to its access nodes): register at
        the first Contact's host and port instead (5060 when it names none), as a new
        registration there: new Call-ID, challenged anew, and keepalives and notifies follow
        it. One hop: a redirect from where a redirect led, or one without a usable Contact,
        fails the attempt, and after the back-off it starts again at the configured server.
        (Over TCP the runner moves the device's connection to the node, see runner.py.)"""
        node: Address | None = None
        with contextlib.suppress(ParseError, IndexError):
            uri = response.contacts[0].uri
            node = (uri.host.strip("[]"), uri.port or 5060)
        if node is None or self._reg.server is not None:
            return self._register_failed(now)
        self._reg = Registration(server=node)
        return self._send_register(now, None)

    def _register_failed(self, now: float) -> list[Output]:
        self.counters.register_failures += 1
        self._lost_registration(now)
        return []

    def _lost_registration(self, now: float) -> None:
        self.registered = False
        self._keepalive_at = None
        self._failures += 1
        self._reg = Registration()
        self._register_at = now + self.retry_delay(self._failures)

    def retry_delay(self, failures: int) -> float:
        """Exponential back-off with +-10 % jitter, so a server restart is not answered by
        every device in the same second."""
        base = min(self.config.retry_max, self.config.retry_base * 2 ** max(0, failures - 1))
        return float(base * (0.9 + 0.2 * self._rng.random()))

    # --- keepalive and MESSAGE -----------------------------------------------------------

    def _send_keepalive(self, now: float) -> list[Output]:
        body = manscdp.to_xml(
            manscdp.Keepalive(device_id=self.config.device_id, sn=self._next_sn(), status="OK")
        )
        self.counters.keepalives_sent += 1
        return self._send_message(now, body, "keepalive")

    def _on_keepalive_result(self, ok: bool, status: int | None, now: float) -> list[Output]:
        if ok:
            self._keepalive_failures = 0
            self.counters.keepalives_ok += 1
            return []
        if (status is not None and 400 <= status < 500) or (
            self._keepalive_failures + 1 >= self.config.keepalive_max_failures
        ):
            # A 4xx means the server no longer knows the device; three silences mean it is
            # gone. Either way: register again (after the back-off).
            self._keepalive_failures = 0
            self._lost_registration(now)
            return []
        self._keepalive_failures += 1
        return []


def _challenge_in(response: SipResponse) -> DigestChallenge | None:
    name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
    try:
        return DigestChallenge.parse(response.headers.get(name) or "")
    except ParseError:
        return None
