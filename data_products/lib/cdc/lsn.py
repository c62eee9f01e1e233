"""Log sequence numbers: PostgreSQL's ``X/Y`` text form and the 64-bit integer the lake stores.

The lake keeps LSNs as integers so that "as of LSN" is a plain range filter; people and run keys
see the text form PostgreSQL prints, so the two can be compared with ``pg_replication_slots``.
"""

from __future__ import annotations

import re

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` → integer; raises ``ValueError`` naming the bad text."""
    match = _LSN.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"invalid LSN {text!r}: expected hexadecimal 'X/Y'")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    """Integer → ``'X/Y'`` (upper-case hexadecimal, as PostgreSQL prints it)."""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"invalid LSN {value}: out of the 64-bit range")
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
