"""Large JSON answers read one entry at a time: a list page (500 objects), a whole list
(100,000), the activity document.

`json.loads` of such an answer builds every entry's dicts at once, several times the text's
size, while the reader keeps a small typed view of each entry (a stripped object, a parsed
ScaledObject). Built that way, the kept views end up scattered among the freed dicts, and the
allocator can give back little of the memory: measured at 10,000 ScaledObjects, the controller
kept 1.4 KB per object after decoding the activity document whole, 0.2 KB entry by entry.
`decode_members` splits the top-level object, then the named arrays, into undecoded spans of the
body (msgspec's `Raw`, no copies) and decodes one entry at a time as it hands it to a callback,
so at most one entry's dicts exist at a time.

msgspec decodes strict JSON (RFC 8259), about twice as fast as the standard library's decoder
on kube-apiserver's answers (docs/performance.md): the controller's start-up at 100,000 objects
is mostly decoding and parsing its three lists. What it refuses beyond `json.loads` is what no
API server writes: NaN and Infinity, numbers out of a float's range, lone surrogate escapes.
Anything that is not one JSON object raises `ValueError` (`msgspec.DecodeError` is one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

Entry = Callable[[Any], None]

_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENTRIES = msgspec.json.Decoder(list[msgspec.Raw])
_VALUE = msgspec.json.Decoder()
_ARRAY = ord("[")  # a Raw span starts at its value, never at blanks


def decode_members(body: bytes | str, arrays: Mapping[str, Entry]) -> dict[str, Any]:
    """The members of a JSON object, but for those named in `arrays` that hold an array: their
    entries go, one by one, to the callback named, and the member is left out."""
    members: dict[str, Any] = {}
    for key, raw in _MEMBERS.decode(body).items():
        entry = arrays.get(key)
        if entry is not None and memoryview(raw)[0] == _ARRAY:
            for item in _ENTRIES.decode(raw):
                entry(_VALUE.decode(item))
        else:
            members[key] = _VALUE.decode(raw)
    return members

