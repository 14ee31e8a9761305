"""The event-stream decoder (reference/providers.md §6.5): the reference frames, every header value
type, frames split across reads and several in one read, CRC mismatches, and agreement with
botocore's parser on random frames."""

from __future__ import annotations

import struct
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.emulators.bedrock import (
    BOOL_FALSE,
    BOOL_TRUE,
    BYTES,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    TIMESTAMP,
    UUID,
    corrupt,
    encode_frame,
    exception_frame,
)
from wayport.providers.aws_eventstream import EventStreamDecoder, EventStreamError, EventStreamMessage

VECTOR = bytes.fromhex(
    "0000009f00000057c37babff0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c7461"
    "0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74"
    "7970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a302c2264656c7461223a7b22"
    "74657874223a224869227d2c2270223a2261626364227df2ace5ff"
)
VECTOR_PAYLOAD = b'{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}'
VECTOR_HEADERS = [
    (":event-type", STRING, "contentBlockDelta"),
    (":content-type", STRING, "application/json"),
    (":message-type", STRING, "event"),
]


def decode_all(data: bytes) -> list[EventStreamMessage]:
    return EventStreamDecoder().feed(data)


def test_reference_frame_decodes() -> None:
    (message,) = decode_all(VECTOR)

    assert message.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert message.payload == VECTOR_PAYLOAD
    assert message.message_type == "event"
    assert message.event_type == "contentBlockDelta"


def test_the_emulator_encodes_the_reference_frame_exactly() -> None:
    assert encode_frame(VECTOR_HEADERS, VECTOR_PAYLOAD) == VECTOR


def test_reference_exception_frame() -> None:
    frame = exception_frame("throttlingException", "Too many requests, please wait before trying again.")

    assert len(frame) == 178
    assert frame[:12].hex() == "000000b2000000613590d5d3"
    (message,) = decode_all(frame)
    assert message.message_type == "exception"
    assert message.header(":exception-type") == "throttlingException"


def test_a_frame_fed_byte_by_byte_decodes_once_complete() -> None:
    decoder = EventStreamDecoder()
    for byte in VECTOR[:-1]:
        assert decoder.feed(bytes([byte])) == []
    assert decoder.pending == len(VECTOR) - 1
    (message,) = decoder.feed(VECTOR[-1:])
    assert message.payload == VECTOR_PAYLOAD
    assert decoder.pending == 0


def test_several_frames_in_one_read_and_a_partial_one() -> None:
    decoder = EventStreamDecoder()
    messages = decoder.feed(VECTOR * 3 + VECTOR[:20])
    assert len(messages) == 3
    assert len(decoder.feed(VECTOR[20:])) == 1


def test_every_header_value_type() -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    frame = encode_frame(
        [
            ("t", BOOL_TRUE, True),
            ("f", BOOL_FALSE, False),
            ("i8", INT8, -5),
            ("i16", INT16, -300),
            ("i32", INT32, 70000),
            ("i64", INT64, -(2**40)),
            ("b", BYTES, b"\x00\x01"),
            ("s", STRING, "héllo"),
            ("ts", TIMESTAMP, when),
            ("u", UUID, ident),
        ],
        b"",
    )
    (message,) = decode_all(frame)
    assert message.headers == {
        "t": True,
        "f": False,
        "i8": -5,
        "i16": -300,
        "i32": 70000,
        "i64": -(2**40),
        "b": b"\x00\x01",
        "s": "héllo",
        "ts": when,
        "u": ident,
    }
    assert message.payload == b""


def test_message_crc_mismatch_raises_and_keeps_the_frames_before_it() -> None:
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamError, match="message CRC") as caught:
        decoder.feed(VECTOR + corrupt(VECTOR))
    assert [m.payload for m in caught.value.complete] == [VECTOR_PAYLOAD]
    with pytest.raises(EventStreamError):
        decoder.feed(VECTOR)  # a corrupted stream stays refused


def test_prelude_crc_mismatch_raises_before_waiting_for_the_frame() -> None:
    broken = VECTOR[:8] + b"\x00\x00\x00\x00" + VECTOR[12:20]
    with pytest.raises(EventStreamError, match="prelude CRC"):
        EventStreamDecoder().feed(broken)


def test_impossible_lengths_raise() -> None:
    prelude = struct.pack(">II", 10, 0)
    with pytest.raises(EventStreamError, match="impossible"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 4)


def test_unknown_header_type_raises() -> None:
    frame = encode_frame([("x", STRING, "y")], b"")
    header_start = 12
    tampered = bytearray(frame)
    tampered[header_start + 2] = 42  # the value type of header "x"
    body = bytes(tampered[:-4])
    with pytest.raises(EventStreamError, match="unknown value type"):
        EventStreamDecoder().feed(body + struct.pack(">I", zlib.crc32(body)))


# -- random frames, random splits ---------------------------------------------------------------

names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8
).filter(lambda s: len(s.encode()) < 256)
timestamps = st.integers(-(2**40), 2**40).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)
header_values = st.one_of(
    st.just((BOOL_TRUE, True)),
    st.just((BOOL_FALSE, False)),
    st.integers(-(2**7), 2**7 - 1).map(lambda v: (INT8, v)),
    st.integers(-(2**15), 2**15 - 1).map(lambda v: (INT16, v)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: (INT32, v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: (INT64, v)),
    st.binary(max_size=40).map(lambda v: (BYTES, v)),
    st.text(max_size=40).map(lambda v: (STRING, v)),
    timestamps.map(lambda v: (TIMESTAMP, v)),
    st.uuids().map(lambda v: (UUID, v)),
)
frames = st.tuples(st.dictionaries(names, header_values, max_size=6), st.binary(max_size=300))


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(frames, min_size=1, max_size=6), data=st.data())
def test_random_frames_split_anywhere_decode_to_the_same_messages(
    messages: list[tuple[dict[str, tuple[int, Any]], bytes]], data: st.DataObject
) -> None:
    stream = b"".join(
        encode_frame([(name, code, value) for name, (code, value) in headers.items()], payload)
        for headers, payload in messages
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = EventStreamDecoder()
    decoded: list[EventStreamMessage] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        decoded.extend(decoder.feed(stream[start:cut]))
        start = cut

    assert decoder.pending == 0
    assert [(m.headers, m.payload) for m in decoded] == [
        ({name: value for name, (_, value) in headers.items()}, payload) for headers, payload in messages
    ]
    # botocore's parser reads the same frames the same way
    buffer = EventStreamBuffer()
    buffer.add_data(stream)
    theirs = list(buffer)
    assert [m.payload for m in theirs] == [m.payload for m in decoded]
    for their, ours in zip(theirs, decoded, strict=True):
        assert their.headers.keys() == ours.headers.keys()
        for name, value in ours.headers.items():
            if isinstance(value, datetime):
                # botocore returns the raw milliseconds for timestamps
                assert their.headers[name] == (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
                    milliseconds=1
                )
            elif isinstance(value, uuid.UUID):
                assert their.headers[name] == value.bytes
            else:
                assert their.headers[name] == value
