"""What a new user meets first: the licence pyproject names, and a missing extra that says
how to install it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from docs_support import ROOT


def test_the_mit_license_is_there() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the cqrskit authors" in text
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("module", ["cqrskit.testing", "cqrskit.projection.testing"])
def test_the_testing_helpers_without_pytest_name_the_extra(module: str) -> None:
    # None in sys.modules makes `import pytest` fail as if it were not installed.
    program = f"import sys; sys.modules['pytest'] = None; import {module}"
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert f'ImportError: {module} needs pytest: pip install "cqrskit[testing]"' in done.stderr
