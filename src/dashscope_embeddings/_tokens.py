"""A tokenizer-free estimate of how many tokens a text costs.

No tokenizer ships with this package (none may be downloaded at run time), so token limits are
checked against an estimate: one token per CJK / kana / hangul character, digit and punctuation
mark, and one token per five letters of a word (at least one). For English prose this lands
near the real count; it is used only to refuse a text that is clearly over a model's limit
before a request is sent. Pass ``token_counter=`` to the client for an exact count.
"""

from __future__ import annotations

import re
import typing

__all__ = ["TokenCounter", "estimate_tokens"]

TokenCounter = typing.Callable[[str], int]

_TOKEN_RE = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"  # one CJK char
    r"|[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"  # letters
    r"|\d"  # one digit
    r"|[^\w\s]|_",  # one punctuation mark
)


def estimate_tokens(text: str) -> int:
    """Estimate the token count of ``text`` (see the module docstring)."""
    total = 0
    for match in _TOKEN_RE.finditer(text):
        length = match.end() - match.start()
        total += 1 if length <= 5 else (length + 4) // 5
    return total
