"""The admin page for staff at ``/admin``: projections, parked events, event streams.

:data:`router` carries the page (HTML, CSS and a little plain JavaScript, served from
this package) and the staff-only JSON endpoints under ``/api/v1/admin`` that it polls.
The endpoints are shells over :mod:`orders.operations`, like the ``orders`` CLI.
"""

from __future__ import annotations

from fastapi import APIRouter

from orders.admin import endpoints, page

__all__ = ["router"]

router = APIRouter()
router.include_router(page.router)
router.include_router(endpoints.router)
