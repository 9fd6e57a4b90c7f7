"""The ``orders`` script without the service's extra says which extra to install."""

from __future__ import annotations

import subprocess
import sys


def test_a_missing_service_dependency_names_the_extra() -> None:
    # Hide typer as if cqrskit were installed without the orders extra.
    code = "import sys; sys.modules['typer'] = None\nfrom orders.entry import main\nmain()\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert 'pip install "cqrskit[orders]"' in done.stderr
    assert "typer" in done.stderr
