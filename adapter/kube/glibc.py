"""The C allocator's knobs for giving memory back to the system; nothing where libc is not glibc.

Two moments leave much of the heap free at once. A burst of TLS connections closing (see
adapter.auth.tls_server: a fixed mmap threshold keeps their 256 KiB read buffers in mappings
of their own, and a trim afterwards returns the small allocations' free pages). And a watch's
list: at 10,000 objects the decoded pages are megabytes, of which the caches keep a small
part; glibc keeps the rest for later allocations, which an idle process never makes (about
0.3 KB per ScaledObject in the controller, 0.9 KB in the adapter). A trim shortly after lists
and start-up work gives it back; later trims asked for meanwhile join the same one.
"""

from __future__ import annotations

import asyncio
import ctypes


class Glibc:
    """The C allocator's knobs for giving memory back; does nothing where libc is not glibc."""

    M_MMAP_THRESHOLD = -3
    MMAP_THRESHOLD = 128 * 1024  # glibc's initial default, kept from rising
    TRIM_DELAY = 1.0  # seconds after a connection closes or a list; later ones join the same trim

    def __init__(self) -> None:
        try:
            self._libc: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
            self._libc.malloc_trim  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            self._libc = None
        self._trim: asyncio.TimerHandle | None = None

    def keep_large_buffers_apart(self) -> None:
        if self._libc is not None:
            self._libc.mallopt(self.M_MMAP_THRESHOLD, self.MMAP_THRESHOLD)

    def trim_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._libc is not None and self._trim is None:
            self._trim = loop.call_later(self.TRIM_DELAY, self._trim_now)

    def _trim_now(self) -> None:
        self._trim = None
        if self._libc is not None:
            self._libc.malloc_trim(0)


GLIBC = Glibc()
