"""SIP over TCP: the stream framer under any chunking, keepalives, limits and garbage."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_gb_sip_message import INVITE, KEEPALIVE, KEEPALIVE_XML, OK_RESPONSE, REGISTER
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.sip import SipMessage, StreamFramer, parse_message

STREAM_SAMPLES = [REGISTER, KEEPALIVE, INVITE, OK_RESPONSE]


def _feed_all(framer: StreamFramer, chunks: list[bytes]) -> list[SipMessage]:
    out: list[SipMessage] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out


def _chunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def test_one_message_in_one_read() -> None:
    framer = StreamFramer()
    [message] = framer.feed(KEEPALIVE)
    assert message.body == KEEPALIVE_XML
    assert framer.buffered == 0


def test_several_messages_in_one_read_and_keepalive_crlfs() -> None:
    framer = StreamFramer()
    stream = b"\r\n\r\n" + KEEPALIVE + b"\r\n" + INVITE + b"\r\n\r\n" + OK_RESPONSE
    messages = framer.feed(stream)
    assert [m.call_id for m in messages] == ["1924337462", "7be2c1a0@192.168.1.10", "1011047669"]
    assert messages[1].body == parse_message(INVITE).body
    assert framer.feed(b"\r\n\r\n") == []
    assert framer.buffered == 0


def test_byte_by_byte() -> None:
    framer = StreamFramer()
    stream = KEEPALIVE + INVITE
    out = _feed_all(framer, [stream[i : i + 1] for i in range(len(stream))])
    assert [m.body for m in out] == [KEEPALIVE_XML, parse_message(INVITE).body]


def test_body_waits_for_content_length() -> None:
    framer = StreamFramer()
    head_end = KEEPALIVE.index(b"\r\n\r\n") + 4
    assert framer.feed(KEEPALIVE[: head_end + 10]) == []
    assert framer.buffered == head_end + 10
    [message] = framer.feed(KEEPALIVE[head_end + 10 :])
    assert message.body == KEEPALIVE_XML


def test_lf_only_stream() -> None:
    framer = StreamFramer()
    messages = framer.feed(REGISTER + REGISTER.replace(b"cseq: 1", b"cseq: 2"))
    assert [m.cseq.seq for m in messages] == [1, 2]


def test_missing_content_length_means_no_body() -> None:
    framer = StreamFramer()
    no_length = REGISTER.replace(b"content-length: 0\n", b"")
    messages = framer.feed(no_length + KEEPALIVE)
    assert [m.cseq.method for m in messages] == ["REGISTER", "MESSAGE"]
    assert messages[0].body == b""


def test_header_limit() -> None:
    framer = StreamFramer(max_header_bytes=200)
    with pytest.raises(ParseError, match="header block over 200"):
        framer.feed(b"MESSAGE sip:a@b SIP/2.0\r\n" + b"X-Pad: " + b"a" * 300)
    # The stream has lost its framing: everything after is refused too.
    with pytest.raises(ParseError, match="already failed"):
        framer.feed(KEEPALIVE)


def test_header_limit_reached_across_reads() -> None:
    framer = StreamFramer(max_header_bytes=1000)
    framer.feed(b"MESSAGE sip:a@b SIP/2.0\r\n")
    with pytest.raises(ParseError):
        for _ in range(100):
            framer.feed(b"X-Pad: aaaaaaaaaaaaaaaaaaaa\r\n")
    assert framer.buffered == 0


def test_body_limit() -> None:
    framer = StreamFramer(max_body_bytes=100)
    with pytest.raises(ParseError, match="over the limit"):
        framer.feed(KEEPALIVE.replace(b"l: ", b"l: 9999", 1))


def test_garbage_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        StreamFramer().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(STREAM_SAMPLES), min_size=1, max_size=5),
    st.lists(st.integers(0, 10_000), max_size=30),
    st.lists(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]), min_size=5, max_size=5),
)
def test_any_chunking_gives_the_same_messages(
    messages: list[bytes], cuts: list[int], keepalives: list[bytes]
) -> None:
    stream = b"".join(
        keepalive + message for keepalive, message in zip(keepalives, messages, strict=False)
    )
    expected = [parse_message(message) for message in messages]
    framer = StreamFramer()
    assert _feed_all(framer, _chunk(stream, cuts)) == expected
    assert framer.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_fuzz_random_chunks(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_header_bytes=512, max_body_bytes=512)
    try:
        _feed_all(framer, chunks)
    except ParseError:
        return
    assert framer.buffered <= 512 + 4 + 512


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(STREAM_SAMPLES), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), max_size=6),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_fuzz_mutated_stream(
    messages: list[bytes], flips: list[tuple[int, int]], cuts: list[int]
) -> None:
    data = bytearray(b"".join(messages))
    for position, value in flips:
        data[position % len(data)] = value
    framer = StreamFramer()
    try:
        for message in _feed_all(framer, _chunk(bytes(data), cuts)):
            assert isinstance(message.body, bytes)
    except ParseError:
        pass
