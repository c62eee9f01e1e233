"""Keep secrets out of lineage events and warnings.

Free text reaches events through error messages and stack traces (an exception may quote a
connection string or a token it was given), and warnings quote transport errors. Both pass
through ``redact``, which blanks the value of every environment variable whose name marks it
as a secret. Values are read at call time, so a key rotated or set by a test is covered.
"""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# Short values ("1", "true") would blank ordinary words; real secrets are longer.
_MIN_SECRET_LENGTH = 8
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+(:[^/\s@]*)?@")
MASK = "***"


def secret_values() -> list[str]:
    """Values of secret-looking environment variables, longest first (so a secret containing
    another is blanked whole)."""
    values = {
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with secret environment values and URL credentials replaced by ``***``."""
    for value in secret_values():
        text = text.replace(value, MASK)
    return _USERINFO.sub(rf"\g<scheme>{MASK}@", text)
