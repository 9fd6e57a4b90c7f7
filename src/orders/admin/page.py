"""The admin page itself: one HTML document, its stylesheet and its script.

The files live beside this module (``static/``) and are served as they are: no build
step, nothing fetched from elsewhere. The page carries no data and needs no token to
load; its script asks the staff-only JSON endpoints for everything, with the token the
person typed in, kept in the tab's sessionStorage and sent only as a header.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Final

from fastapi import APIRouter, HTTPException, Response

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_TYPES: Final = {
    "admin.css": "text/css; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
}

# Only this origin's own script and stylesheet run: a payload or error message that
# holds markup is shown as text by the script, and could not load anything if it were not.
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return files("orders.admin").joinpath("static", name).read_bytes()


@router.get("/admin")
async def admin_page() -> Response:
    """The admin page (the data comes from ``/api/v1/admin/...`` with a staff token)."""
    return Response(_asset("admin.html"), media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/admin/static/{name}")
async def admin_asset(name: str) -> Response:
    """The page's stylesheet or script."""
    media_type = _TYPES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no admin file {name!r}")
    return Response(_asset(name), media_type=media_type, headers=_HEADERS)
