"""Incremental decoder of AWS event-stream frames (``application/vnd.amazon.eventstream``).

Frame layout (all integers big-endian, CRCs are CRC-32/IEEE as ``zlib.crc32`` computes them)::

    uint32 total_length | uint32 headers_length | uint32 prelude_crc | headers | payload | uint32 message_crc

Bytes are fed as they arrive from the network: a frame may span several reads and one read may
hold several frames. A CRC mismatch or an impossible length raises ``EventStreamError``; the
decoder then refuses further input, because the frame boundaries can no longer be trusted.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

PRELUDE_LENGTH = 12
# prelude plus the trailing message CRC: the smallest possible frame
MIN_FRAME_LENGTH = PRELUDE_LENGTH + 4

HeaderValue = bool | int | bytes | str | datetime | uuid.UUID

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRELUDE = struct.Struct(">III")
_UINT32 = struct.Struct(">I")
_UINT16 = struct.Struct(">H")
# value type code -> fixed-width signed integer format
_INTEGERS = {2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i"), 5: struct.Struct(">q")}
_TIMESTAMP = struct.Struct(">q")


class EventStreamError(ValueError):
    """A frame that cannot be trusted: bad CRC, impossible lengths or malformed headers.

    ``complete`` holds the frames of the same read that decoded cleanly before the bad one.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.complete: list[EventStreamMessage] = []


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    """One decoded frame: its headers (name -> typed value) and its raw payload."""

    headers: dict[str, HeaderValue] = field(default_factory=dict)
    payload: bytes = b""

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if isinstance(value, str) else None

    @property
    def message_type(self) -> str | None:
        """``event``, ``exception`` or ``error``."""
        return self.header(":message-type")

    @property
    def event_type(self) -> str | None:
        return self.header(":event-type")


class EventStreamDecoder:
    """Feed raw bytes; get back the frames completed so far, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed = False

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        if self._failed:
            raise EventStreamError("the event stream is corrupted; no further frames can be read")
        self._buffer += data
        messages: list[EventStreamMessage] = []
        buffer = self._buffer
        offset = 0
        try:
            while len(buffer) - offset >= PRELUDE_LENGTH:
                total_length, headers_length, prelude_crc = _PRELUDE.unpack_from(buffer, offset)
                if zlib.crc32(buffer[offset : offset + 8]) != prelude_crc:
                    raise EventStreamError(
                        f"prelude CRC mismatch (expected {prelude_crc:08x}) in a frame of "
                        f"{total_length} bytes"
                    )
                if total_length < MIN_FRAME_LENGTH or headers_length > total_length - MIN_FRAME_LENGTH:
                    raise EventStreamError(
                        f"impossible frame lengths: total {total_length}, headers {headers_length}"
                    )
                if len(buffer) - offset < total_length:
                    break  # the rest of this frame is still on the wire
                # a copy, not a view: a live view would stop the buffer from shrinking below
                messages.append(_decode_frame(bytes(buffer[offset : offset + total_length]), headers_length))
                offset += total_length
        except EventStreamError as exc:
            self._failed = True
            exc.complete = messages
            raise
        finally:
            if offset:
                del buffer[:offset]
        return messages

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame (non-zero at EOF: a truncated stream)."""
        return len(self._buffer)


def _decode_frame(data: bytes, headers_length: int) -> EventStreamMessage:
    frame = memoryview(data)
    end = len(frame) - 4
    (message_crc,) = _UINT32.unpack_from(frame, end)
    actual = zlib.crc32(frame[:end])
    if actual != message_crc:
        raise EventStreamError(f"message CRC mismatch (expected {message_crc:08x}, computed {actual:08x})")
    headers_end = PRELUDE_LENGTH + headers_length
    headers = _decode_headers(frame[PRELUDE_LENGTH:headers_end])
    return EventStreamMessage(headers, bytes(frame[headers_end:end]))


def _decode_headers(data: memoryview) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    offset = 0
    size = len(data)
    try:
        while offset < size:
            name_length = data[offset]
            offset += 1
            name = bytes(data[offset : offset + name_length]).decode("utf-8")
            offset += name_length
            value_type = data[offset]
            offset += 1
            value: HeaderValue
            if value_type == 0:
                value = True
            elif value_type == 1:
                value = False
            elif value_type in _INTEGERS:
                fmt = _INTEGERS[value_type]
                (value,) = fmt.unpack_from(data, offset)
                offset += fmt.size
            elif value_type in (6, 7):
                (length,) = _UINT16.unpack_from(data, offset)
                offset += 2
                raw = bytes(data[offset : offset + length])
                if len(raw) != length:
                    raise EventStreamError(f"header {name!r} is longer than the header block")
                offset += length
                value = raw if value_type == 6 else raw.decode("utf-8")
            elif value_type == 8:
                (millis,) = _TIMESTAMP.unpack_from(data, offset)
                offset += 8
                value = _EPOCH + timedelta(milliseconds=millis)
            elif value_type == 9:
                raw = bytes(data[offset : offset + 16])
                if len(raw) != 16:
                    raise EventStreamError(f"header {name!r} is longer than the header block")
                offset += 16
                value = uuid.UUID(bytes=raw)
            else:
                raise EventStreamError(f"header {name!r} has unknown value type {value_type}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError(f"malformed header block ({exc})") from None
    if offset != size:
        raise EventStreamError("header block overruns its declared length")
    return headers
