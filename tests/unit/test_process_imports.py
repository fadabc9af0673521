"""What each process imports at start-up: an idle process's memory is mostly the modules it loads.

The official `kubernetes` package (its generated models: about 30 MB resident) is loaded by no
process unless a kubeconfig needs an exec plugin or auth-provider (adapter/kube/credentials.py);
the controller and the interceptor do not load the API server (FastAPI, the catalog, the
metric store): `python -m adapter controller` went from 78 MB of imports to 50.
Each case runs in a fresh interpreter, importing what `python -m adapter COMMAND` imports.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NEVER_LOADED = ("kubernetes",)
CASES = [  # (command, the modules `python -m adapter COMMAND` imports before it runs, not loaded)
    ("serve", ("adapter.cli", "adapter.server"), NEVER_LOADED),
    ("controller", ("adapter.cli", "adapter.controller.controller"),
     (*NEVER_LOADED, "fastapi", "adapter.server", "adapter.catalog.catalog", "adapter.store.store")),
    ("interceptor", ("adapter.cli", "adapter.interceptor.interceptor_command"),
     (*NEVER_LOADED, "fastapi", "adapter.server", "adapter.catalog.catalog", "adapter.store.store")),
]


@pytest.mark.parametrize(("command", "imports", "absent"), CASES, ids=[c[0] for c in CASES])
def test_a_process_loads_only_what_it_runs(command: str, imports: tuple[str, ...], absent: tuple[str, ...]) -> None:
    script = (f"import sys, json\nimport {', '.join(imports)}\n"
              f"print(json.dumps([m for m in {list(absent)!r} if m in sys.modules]))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                       text=True).stdout)
    assert loaded == [], f"`{command}` loads {loaded}"
