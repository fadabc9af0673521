"""`make bench`: print the project's performance figures.

    python -m tests.bench            # everything
    python -m tests.bench api        # one part: api, brokers, controller, faults, servers, scalers,
                                     #   streams, interceptor, delegation, activation, scaledjobs, memory

Figures are ratios against a baseline measured in the same command where one exists; the
machine is shared and noisy, so read them as such.
"""

from __future__ import annotations

import importlib
import sys

# part -> module of tests/bench, imported only when its part runs: a part measures a process's memory,
# which must not hold the other parts' servers and SDKs
PARTS = {"api": "api", "brokers": "brokers", "controller": "controller_load", "faults": "faults",
         "servers": "server_startup", "scalers": "scalers", "streams": "streams_and_queries",
         "interceptor": "interceptor", "delegation": "delegation_latency", "activation": "activation",
         "scaledjobs": "scaled_jobs", "memory": "memory_per_object"}


def main(argv: list[str]) -> int:
    for name in argv or list(PARTS):
        part = importlib.import_module(f"tests.bench.{PARTS[name]}")
        part.print_report(part.run())
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
