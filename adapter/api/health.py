"""`/healthz`, `/livez` and `/readyz` in the generic apiserver's format.

`ok` with 200 when every check passes; `?verbose` lists `[+]name ok` lines; a failing check is
`[-]name failed: reason withheld` and a 500. `/<endpoint>/<check>` runs one check, and
`?exclude=<check>` skips one. These paths need no client certificate (kubelet probes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Check = Callable[[], bool]


@dataclass
class Health:
    live: dict[str, Check] = field(default_factory=lambda: {"ping": lambda: True})
    ready: dict[str, Check] = field(default_factory=dict)

    def checks(self, endpoint: str) -> dict[str, Check]:
        return {**self.live, **self.ready} if endpoint == "readyz" else dict(self.live)


def run_checks(
    endpoint: str, checks: dict[str, Check], verbose: bool, excluded: set[str]
) -> tuple[int, str]:
    lines: list[str] = []
    failed = False
    for name, check in checks.items():
        if name in excluded:
            lines.append(f"[+]{name} excluded: ok")
            continue
        ok = _safe(check)
        failed |= not ok
        lines.append(f"[+]{name} ok" if ok else f"[-]{name} failed: reason withheld")
    if failed:
        return 500, "\n".join(lines) + f"\n{endpoint} check failed\n"
    if verbose:
        return 200, "\n".join(lines) + f"\n{endpoint} check passed\n"
    return 200, "ok"


def run_one(checks: dict[str, Check], name: str) -> tuple[int, str] | None:
    check = checks.get(name)
    if check is None:
        return None
    return (200, "ok") if _safe(check) else (500, "internal server error: reason withheld\n")


def _safe(check: Check) -> bool:
    try:
        return bool(check())
    except Exception:
        return False
