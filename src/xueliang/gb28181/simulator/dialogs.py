"""The simulated device's media dialogs: INVITE (Play, Playback, Download) answered with SDP,
the stream started on the ACK, and ended by BYE.

What the stream carries and how it is paced is the runner's (:class:`StartStream`,
:class:`StopStream`); a Playback or Download that reached its end sends MediaStatus 121.
"""

from __future__ import annotations

from xueliang.gb28181 import manscdp, sdp
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.simulator.core import DeviceCore
from xueliang.gb28181.simulator.model import (
    USER_AGENT,
    Address,
    Dialog,
    Output,
    StartStream,
    StopStream,
)
from xueliang.gb28181.sip import SipRequest, SipResponse, make_response, new_tag
from xueliang.gb28181.sip.transaction import ServerTransaction


class MediaDialogsMixin(DeviceCore):
    """INVITE, ACK and BYE, and the end of a recording's media."""

    def media_finished(self, call_id: str, now: float) -> list[Output]:
        """A Playback or Download sent all it had: MediaStatus 121, the platform then BYEs."""
        dialog = self.dialogs.get(call_id)
        if dialog is None:
            return []
        status = manscdp.MediaStatus(device_id=dialog.start.channel_id, sn=self._next_sn())
        # Sent outside the dialog, as devices do (the platform matches it by the channel).
        return self._send_message(now, manscdp.to_xml(status), "message")

    def _on_invite(
        self,
        request: SipRequest,
        transaction: ServerTransaction | None,
        now: float,
        source: Address | None,
    ) -> list[Output]:
        self.counters.invites += 1
        call_id = request.call_id
        if call_id in self.dialogs:  # a re-INVITE: keep the session as it is
            dialog = self.dialogs[call_id]
            return self._respond(transaction, self._ok_for(request, dialog), now)
        target = request.request_uri.user or ""
        channel = self._channels.get(target)
        if channel is None and target == self.config.device_id and len(self._channels) == 1:
            channel = next(iter(self._channels.values()))
        if channel is None:
            return self._respond(transaction, make_response(request, 404), now)
        try:
            offer = sdp.parse(request.body)
        except ParseError:
            return self._respond(transaction, make_response(request, 488), now)
        media = offer.first_media()
        address = (media.address if media else None) or offer.address or (source or ("", 0))[0]
        if media is None or media.refused or not address:
            return self._respond(transaction, make_response(request, 488), now)
        transport = sdp.Transport.TCP if media.is_tcp else sdp.Transport.UDP
        answer_draft = sdp.answer_for(offer, device_id=self.config.device_id, address="", port=0)
        port = self._allocate_port(call_id, transport, answer_draft.setup)
        ssrc = offer.ssrc_value
        if ssrc is None:
            ssrc = int(self._rng.random() * 1_000_000_000)
        history = offer.session_type in (sdp.SessionType.PLAYBACK, sdp.SessionType.DOWNLOAD)
        start = StartStream(
            call_id=call_id,
            channel_id=channel.channel_id,
            session_type=offer.session_type or sdp.SessionType.PLAY,
            ssrc=ssrc,
            transport=transport,
            setup=answer_draft.setup,
            remote=(address, media.port),
            local_port=port,
            start=offer.range_unix[0] if history else 0,
            stop=offer.range_unix[1] if history else 0,
            speed=float(media.download_speed or 1),
            stream_number=media.stream_number or 0,
        )
        dialog = Dialog(invite=request, to_tag=new_tag(), start=start)
        self.dialogs[call_id] = dialog
        return self._respond(transaction, self._ok_for(request, dialog), now)

    def _ok_for(self, request: SipRequest, dialog: Dialog) -> SipResponse:
        start = dialog.start
        answer = sdp.Answer(
            device_id=start.channel_id,
            address=self.config.media_host,
            port=start.local_port,
            ssrc=f"{start.ssrc:010d}",
            session_type=start.session_type,
            transport=start.transport,
            setup=start.setup,
        )
        return make_response(
            request,
            200,
            to_tag=dialog.to_tag,
            headers=[("Contact", str(self._contact())), ("User-Agent", USER_AGENT)],
            body=answer.to_bytes(),
            content_type="application/sdp",
        )

    def _on_ack(self, ack: SipRequest) -> list[Output]:
        dialog = self.dialogs.get(ack.call_id)
        if dialog is None or dialog.acked:
            return []
        dialog.acked = True
        return [dialog.start]

    def _on_bye(
        self, request: SipRequest, transaction: ServerTransaction | None, now: float
    ) -> list[Output]:
        dialog = self.dialogs.pop(request.call_id, None)
        status = 200 if dialog is not None else 481
        outputs = self._respond(transaction, make_response(request, status), now)
        if dialog is not None:
            outputs.append(StopStream(request.call_id))
        return outputs
