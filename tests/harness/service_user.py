"""Servers that refuse to run as root, run as their Debian package's system user.

The tests run as root, and PostgreSQL will not start as root while MariaDB drops to a user of
its own. Their temporary directories (data, sockets, TLS keys) are handed to that user, and a
server that does not switch users itself is started through `setpriv`, which execs the server
in place, so signals reach the server itself rather than a wrapper process.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path


def hand_over(directory: Path, user: str) -> None:
    """Make `user` (and its primary group) the owner of `directory` and everything in it."""
    account = pwd.getpwnam(user)
    for root, dirs, files in os.walk(directory):
        for name in [root, *(os.path.join(root, entry) for entry in dirs + files)]:
            shutil.chown(name, account.pw_uid, account.pw_gid)


def run_as(user: str) -> list[str]:
    """A command prefix that runs the rest of the command as `user`, with its group only."""
    account = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups", "--"]
