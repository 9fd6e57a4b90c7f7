"""The README's run command: the quickstart works end to end on a fresh SQLite file."""

import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.py"


def run(db: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(QUICKSTART), str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quickstart_runs_and_a_second_run_continues(tmp_path: Path) -> None:
    db = tmp_path / "quickstart.db"
    first = run(db)
    assert "Withdraw 1000 refused: cannot withdraw 1000" in first
    assert "replayed=True" in first
    assert "Ada's balance: 70.00 at version 3" in first
    assert "refused: stream 'Account-acc-1': expected version 3, but it is at version 4" in first
    assert "4 events in the store, last position 4" in first
    assert "read model at token 5 after" in first
    assert "Ada has 75.50" in first
    assert "the aggregate agrees: 75.50" in first
    assert (tmp_path / "quickstart-read.db").exists()
    second = run(db)
    assert "Ada's balance: 145.50 at version 7" in second
    # Three new events: the account is not reopened and the stale deposit is never written.
    assert "8 events in the store, last position 8" in second
    # The projection caught up from its checkpoint: nothing applied twice, nothing missed.
    assert "Ada has 151.00" in second
    assert "the aggregate agrees: 151.00" in second
