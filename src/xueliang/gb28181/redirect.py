"""Redirecting registrations to other access nodes: the first step of the clustered mode.

A front address (``[gb28181] redirect_to``) spreads a large fleet over several SIP servers: it
authenticates a REGISTER as usual and answers ``302 Moved Temporarily`` with a Contact naming
the node the device is to register at (gb28181-interop.md, "redirect"). Every device always
lands on the same node, and a node added to or removed from the list moves only the devices it
gains or loses (rendezvous hashing), not the whole fleet.

Sans-I/O: strings in, strings out; the SIP server (registration.py) decides when to answer
with them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.sip import SipUri

MOVED = 302  # Moved Temporarily: the device asks the front again after it lost its node


@dataclass(frozen=True, slots=True)
class Node:
    """An access node: where a redirected device registers. ``host`` as a SIP URI writes it
    (an IPv6 address in brackets)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_node(text: str) -> Node:
    """``host:port`` (``[2001:db8::1]:5060`` for IPv6); ValueError saying what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("an empty access node (host:port expected)")
    try:
        uri = SipUri.parse(f"sip:{text}")
    except ParseError:
        uri = None
    if uri is None or uri.user is not None or uri.params or uri.headers is not None:
        raise ValueError(f"{text!r} is not host:port (port 1-65535)")
    if uri.port is None:
        raise ValueError(f"{text!r} has no port (host:port)")
    return Node(uri.host, uri.port)


def parse_nodes(entries: Sequence[str]) -> tuple[Node, ...]:
    """The list from the configuration, each entry checked; duplicates are an error (a node
    twice would get twice the devices, which is not what a list of nodes says)."""
    nodes = tuple(parse_node(entry) for entry in entries)
    if len(set(nodes)) != len(nodes):
        raise ValueError("an access node is listed twice")
    return nodes


def choose_node(device_id: str, nodes: Sequence[Node]) -> Node:
    """The node ``device_id`` registers at: the one whose hash with the device's ID is the
    highest. The same on every front and after every restart (no Python ``hash``, which is
    salted per process), whatever the order of the list."""
    if not nodes:
        raise ValueError("no access nodes to choose from")
    return max(nodes, key=lambda node: _score(device_id, node))


def redirect_contact(device_id: str, node: Node) -> str:
    """The Contact of the 302: the device's own ID at the node."""
    return f"<sip:{device_id}@{node}>"


def _score(device_id: str, node: Node) -> bytes:
    return hashlib.blake2b(f"{device_id}@{node}".encode(), digest_size=8).digest()
