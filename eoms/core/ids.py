"""Identifiers: time-ordered UUIDs (version 7, RFC 9562) so URLs leak nothing and indexes stay local."""

import os
import time
import uuid

__all__ = ["uuid7", "valid_uuids"]


def uuid7() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 68) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def valid_uuids(values) -> list[str]:
    """The well-formed UUIDs among `values`, as strings, in order; junk (a hand-edited document, a
    tampered form) is dropped, since a lookup with a malformed UUID raises instead of finding nothing."""
    out = []
    for value in values or ():
        try:
            out.append(str(uuid.UUID(str(value))))
        except (ValueError, TypeError, AttributeError):
            continue
    return out
