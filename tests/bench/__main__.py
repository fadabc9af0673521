"""`make bench`: print the project's performance figures.

    python -m tests.bench            # everything
    python -m tests.bench api        # one part

Figures are ratios against a baseline measured in the same command where one exists; the
machine is shared and noisy, so read them as such.
"""

from __future__ import annotations

import sys

from . import api


def main(argv: list[str]) -> int:
    parts = argv or ["api"]
    if "api" in parts:
        api.print_report(api.run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
