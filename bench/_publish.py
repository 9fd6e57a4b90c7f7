"""Writing a benchmark's results: the JSON in bench/results/, then its plots in docs/bench/."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def publish(path: Path, results: dict[str, Any], plots: str) -> None:
    """Write ``results`` to ``path`` and draw them with ``plots.<plots>``.

    The JSON comes first and stays when matplotlib (the ``bench`` extra) is missing: the
    plots can be drawn later with ``bench/plots.py``.
    """
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import plots as drawing
    except ImportError as exc:
        print(f"no plots drawn ({exc}): pip install -e '.[bench]', then bench/plots.py")
        return
    for drawn in getattr(drawing, plots)(results):
        print(f"wrote {drawn.relative_to(ROOT)}")
