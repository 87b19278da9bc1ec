"""SIP dialogs on the calling side (RFC 3261 section 12), sans-I/O.

The platform calls (INVITE for a stream, SUBSCRIBE for catalogue/alarm/position notifications)
and the device answers; a dialog is what both then share: Call-ID, the two tags, the device's
Contact as the target of later requests, the route set and the platform's CSeq counter.
``Dialog.from_response`` builds one from the request and its 2xx; ``ack``, ``request`` make the
ACK for that 2xx (a new transaction of its own, RFC 3261 13.2.2.4) and in-dialog requests (BYE,
INFO with MANSRTSP, re-SUBSCRIBE); ``matches`` recognises the device's requests in the dialog
(its BYE at the end of a recording, a NOTIFY of a subscription).

Devices differ: some omit Contact in the 2xx (the request's URI is then kept as target), some
put a private address there while sending from behind NAT (the caller decides where packets go;
the target only fills the Request-URI).
"""

from __future__ import annotations

from dataclasses import dataclass

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.sip.address import NameAddr, Via
from xueliang.gb28181.sip.message import SipRequest, SipResponse, make_request, new_branch


@dataclass(slots=True)
class Dialog:
    call_id: str
    local: NameAddr  # our From, with our tag
    remote: NameAddr  # the device's To, with its tag (None before the answer on a fork)
    target: str  # Request-URI of in-dialog requests: the device's Contact
    route_set: tuple[str, ...] = ()
    local_seq: int = 1
    invite_seq: int = 1  # the CSeq of the request that created the dialog (its ACK repeats it)
    remote_seq: int | None = None

    @property
    def local_tag(self) -> str | None:
        return self.local.tag

    @property
    def remote_tag(self) -> str | None:
        return self.remote.tag

    @classmethod
    def from_response(cls, request: SipRequest, response: SipResponse) -> Dialog:
        """The dialog a 2xx to ``request`` (INVITE or SUBSCRIBE) creates. Record-Route of the
        response, reversed, is the route set (12.1.2)."""
        if not 200 <= response.status < 300:
            raise ValueError(f"a {response.status} response creates no dialog")
        local = request.from_
        if local.tag is None:
            raise ParseError("the request that creates a dialog must carry a From tag")
        contacts = response.contacts
        target = str(contacts[0].uri) if contacts else request.uri
        routes = tuple(reversed(response.headers.get_all("Record-Route")))
        seq = request.cseq.seq
        return cls(
            call_id=request.call_id,
            local=local,
            remote=response.to,
            target=target,
            route_set=routes,
            local_seq=seq,
            invite_seq=seq,
        )

    def ack(self, via: Via) -> SipRequest:
        """The ACK for the 2xx (sent again for each retransmitted 2xx)."""
        return self._build("ACK", via, self.invite_seq)

    def request(
        self,
        method: str,
        via: Via,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> SipRequest:
        """The next in-dialog request (BYE, INFO, SUBSCRIBE refresh): CSeq one higher."""
        self.local_seq += 1
        return self._build(
            method, via, self.local_seq, body=body, content_type=content_type, headers=headers
        )

    def matches(self, request: SipRequest) -> bool:
        """Whether ``request`` from the device belongs to this dialog (Call-ID and both tags;
        its From carries the device's tag, its To ours)."""
        try:
            if request.call_id != self.call_id:
                return False
            return request.to.tag == self.local.tag and (
                self.remote.tag is None or request.from_.tag == self.remote.tag
            )
        except ParseError:
            return False

    def _build(
        self,
        method: str,
        via: Via,
        seq: int,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> SipRequest:
        extra = [("Route", route) for route in self.route_set]
        request = make_request(
            method,
            self.target,
            via=Via(via.transport, via.host, via.port, {**via.params, "branch": new_branch()}),
            from_=self.local,
            to=self.remote,
            call_id=self.call_id,
            cseq=seq,
            headers=extra + list(headers or []),
            body=body,
            content_type=content_type if body else None,
        )
        return request
