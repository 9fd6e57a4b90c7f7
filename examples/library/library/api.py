"""The HTTP API: each route turns a request into one command or query and shapes the answer.

No SQL, no aggregates and no rules here. The service has no authentication, to stay
small: a real one passes the caller to ``command_metadata`` as ``user_id`` and ``scope``
(see docs/fastapi.md), so that two callers' Idempotency-Keys never meet.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict

from cqrskit.fastapi import (
    COMMAND_RESPONSES,
    QUERY_RESPONSES,
    CommandBusDep,
    QueryBusDep,
    command_metadata,
    command_response,
    command_responses,
    cqrs_lifespan,
    etag,
    if_match_version,
    install_health,
    install_metrics,
    install_problem_handlers,
    problem_responses,
    read_your_writes,
)
from library.application.commands import (
    AddCopy,
    Barcode,
    CatalogueTitle,
    Email,
    Isbn,
    JoinLibrary,
    LendCopy,
    Name,
    RenewLoan,
    ReturnCopy,
)
from library.application.queries import (
    GetLoan,
    GetMember,
    GetOverdueLoans,
    GetTitle,
    ListMemberLoans,
)
from library.application.views import LoanView, MemberView, OverdueReport, TitleView
from library.bootstrap import open_services
from library.domain import LoanLimitReached
from library.settings import Settings

__all__ = ["create_app"]

T = TypeVar("T")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JoinBody(_Body):
    name: Name
    email: Email


class TitleBody(_Body):
    isbn: Isbn
    name: Name
    author: Name


class CopyBody(_Body):
    barcode: Barcode


class LendBody(_Body):
    copy_id: Barcode
    member_id: str


class Done(BaseModel):
    """The id a command created or changed."""

    id: str


READ = {**QUERY_RESPONSES, **problem_responses(404)}
CHANGED = command_responses(200)
IfMatch = Annotated[int | None, Depends(if_match_version)]

router = APIRouter()


def or_404(view: T | None, what: str, id: str) -> T:
    """The view, or a 404 problem when the read model has no such thing."""
    if view is None:
        raise HTTPException(404, f"{what} {id} does not exist")
    return view


@router.post("/members", status_code=201, response_model=Done, responses=COMMAND_RESPONSES)
async def join_library(body: JoinBody, request: Request, bus: CommandBusDep) -> Response:
    """Become a member."""
    command = JoinLibrary(name=body.name, email=body.email, metadata=command_metadata(request))
    result = await bus.send(command)
    return command_response(
        result, Done(id=result.aggregate_id), 201, f"/members/{result.aggregate_id}"
    )


@router.get(
    "/members/{member_id}",
    response_model=MemberView,
    responses=READ,
    dependencies=[Depends(read_your_writes("loans"))],
)
async def get_member(member_id: str, bus: QueryBusDep) -> MemberView:
    """A member and how many copies they hold."""
    return or_404(await bus.ask(GetMember(member_id=member_id)), "member", member_id)


@router.get(
    "/members/{member_id}/loans",
    response_model=list[LoanView],
    responses=READ,
    dependencies=[Depends(read_your_writes("loans"))],
)
async def list_member_loans(member_id: str, bus: QueryBusDep) -> list[LoanView]:
    """A member's loans, the newest first."""
    return await bus.ask(ListMemberLoans(member_id=member_id))


@router.post("/titles", status_code=201, response_model=Done, responses=COMMAND_RESPONSES)
async def catalogue_title(body: TitleBody, request: Request, bus: CommandBusDep) -> Response:
    """Add a title to the catalog; its id is its ISBN."""
    command = CatalogueTitle(
        isbn=body.isbn, name=body.name, author=body.author, metadata=command_metadata(request)
    )
    result = await bus.send(command)
    return command_response(
        result, Done(id=result.aggregate_id), 201, f"/titles/{result.aggregate_id}"
    )


@router.post(
    "/titles/{title_id}/copies", status_code=201, response_model=Done, responses=COMMAND_RESPONSES
)
async def add_copy(title_id: str, body: CopyBody, request: Request, bus: CommandBusDep) -> Response:
    """Put a new copy of a title on the shelf; its id is its barcode."""
    command = AddCopy(barcode=body.barcode, title_id=title_id, metadata=command_metadata(request))
    result = await bus.send(command)
    return command_response(result, Done(id=result.aggregate_id), 201, f"/titles/{title_id}")


@router.get(
    "/titles/{title_id}",
    response_model=TitleView,
    responses=READ,
    dependencies=[Depends(read_your_writes("catalog"))],
)
async def get_title(title_id: str, bus: QueryBusDep) -> TitleView:
    """A title with its number of copies and how many are on the shelf."""
    return or_404(await bus.ask(GetTitle(title_id=title_id)), "title", title_id)


@router.post("/loans", status_code=201, response_model=Done, responses=COMMAND_RESPONSES)
async def lend_copy(body: LendBody, request: Request, bus: CommandBusDep) -> Response:
    """Lend a copy to a member, for three weeks."""
    command = LendCopy(
        copy_id=body.copy_id, member_id=body.member_id, metadata=command_metadata(request)
    )
    result = await bus.send(command)
    return command_response(
        result, Done(id=result.aggregate_id), 201, f"/loans/{result.aggregate_id}"
    )


@router.get(
    "/loans/{loan_id}",
    response_model=LoanView,
    responses=READ,
    dependencies=[Depends(read_your_writes("loans"))],
)
async def get_loan(loan_id: str, response: Response, bus: QueryBusDep) -> LoanView:
    """A loan, with its version as ETag: send it back as If-Match to renew that version."""
    loan = or_404(await bus.ask(GetLoan(loan_id=loan_id)), "loan", loan_id)
    response.headers["ETag"] = etag(loan.version)
    return loan


@router.post("/loans/{loan_id}/renew", response_model=Done, responses=CHANGED)
async def renew_loan(
    loan_id: str, request: Request, bus: CommandBusDep, expected: IfMatch
) -> Response:
    """Renew a loan for three more weeks (412 if If-Match names another version)."""
    command = RenewLoan(
        loan_id=loan_id, expected_version=expected, metadata=command_metadata(request)
    )
    result = await bus.send(command)
    return command_response(result, Done(id=result.aggregate_id), 200)


@router.post("/copies/{copy_id}/return", response_model=Done, responses=CHANGED)
async def return_copy(copy_id: str, request: Request, bus: CommandBusDep) -> Response:
    """A copy came back: close its loan. Answers the id of the closed loan."""
    command = ReturnCopy(copy_id=copy_id, metadata=command_metadata(request))
    result = await bus.send(command)
    return command_response(result, Done(id=result.aggregate_id), 200)


@router.get(
    "/reports/overdue",
    response_model=OverdueReport,
    responses=READ,
    dependencies=[Depends(read_your_writes("loans"))],
)
async def overdue_report(on: date, bus: QueryBusDep) -> OverdueReport:
    """Open loans that were due before ``on``, the longest overdue first."""
    return await bus.ask(GetOverdueLoans(on=on))


DOMAIN_STATUSES: dict[type[Exception], int] = {LoanLimitReached: 403}
"""Other domain errors answer 409 Conflict; reaching the limit is a refusal that no
retry changes until the member returns a copy."""


def create_app(settings: Settings | None = None, *, run_projections: bool = True) -> FastAPI:
    """The library's app: routes, problem+json errors, health and metrics, with its
    services opened for the app's lifetime (settings from the environment by default)."""
    settings = settings or Settings.from_env()
    metrics = CollectorRegistry()
    app = FastAPI(
        title="Library",
        lifespan=cqrs_lifespan(
            lambda: open_services(settings, run_projections=run_projections, metrics=metrics)
        ),
    )
    install_problem_handlers(app, DOMAIN_STATUSES)
    install_metrics(app, metrics)
    install_health(app)
    app.include_router(router)
    return app
