"""SIP (RFC 3261) for GB/T 28181, sans-I/O: messages, TCP framing, digest auth, transactions.

Nothing here opens a socket or reads a clock; the asyncio server feeds bytes and times in and
carries out the actions that come back.
"""

from xueliang.gb28181.sip.address import CSeq, NameAddr, SipUri, Via
from xueliang.gb28181.sip.digest import (
    DigestAuthenticator,
    DigestChallenge,
    DigestCredentials,
    Outcome,
    Verification,
    authorize,
    compute_response,
)
from xueliang.gb28181.sip.framing import StreamFramer
from xueliang.gb28181.sip.headers import Headers
from xueliang.gb28181.sip.message import (
    SipMessage,
    SipRequest,
    SipResponse,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    stamp_received,
)
from xueliang.gb28181.sip.table import TransactionTable
from xueliang.gb28181.sip.transaction import (
    Action,
    ClientTransaction,
    Deliver,
    Send,
    ServerTransaction,
    State,
    Terminated,
    Timeout,
    Timers,
)

__all__ = [
    "Action",
    "CSeq",
    "ClientTransaction",
    "Deliver",
    "DigestAuthenticator",
    "DigestChallenge",
    "DigestCredentials",
    "Headers",
    "NameAddr",
    "Outcome",
    "Send",
    "ServerTransaction",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "State",
    "StreamFramer",
    "Terminated",
    "Timeout",
    "Timers",
    "TransactionTable",
    "Verification",
    "Via",
    "authorize",
    "compute_response",
    "make_request",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "stamp_received",
]
