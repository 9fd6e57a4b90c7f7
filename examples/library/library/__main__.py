"""``python -m library``: the API and the projection runner on http://127.0.0.1:8000."""

from __future__ import annotations

import logging
import os

import uvicorn

from library.api import create_app


def main() -> None:
    """Serve the library (``LIBRARY_*`` variables choose the stores)."""
    # LoggingMiddleware logs through the standard library: nothing shows until it is set up.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("LIBRARY_PORT", "8000")))


if __name__ == "__main__":
    main()
