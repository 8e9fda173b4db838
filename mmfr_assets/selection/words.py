"""Words as the published rules count them: Python's `str.split()` on whitespace.

The vectorized rules match words with a regex; its whitespace class is built from
`str.isspace` itself, because Python's whitespace (e.g. U+001C..U+001F) differs from Rust
regex's `\\s`.
"""

from __future__ import annotations

import sys

PY_WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
WORD_PATTERN = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE) + "]+"
