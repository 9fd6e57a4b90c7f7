"""The HTTP API: routes that turn requests into commands and queries, and answers back.

A route handler builds its message, sends it through a bus and shapes the answer; no
SQL, no aggregates and no business rules live here. Authorization that depends on data
(a customer acting on their own order) is decided where the data is: command handlers
for writes, queries for reads, both answering "not found" to strangers.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from cqrskit import Command, CommandResult, Metadata
from cqrskit.fastapi import (
    DEFAULT_MAX_BODY_BYTES,
    QUERY_RESPONSES,
    app_services,
    command_metadata,
    command_response,
    command_responses,
    cqrs_lifespan,
    etag,
    if_match_version,
    install_body_limit,
    install_health,
    install_metrics,
    install_problem_handlers,
    problem_responses,
    read_your_writes,
)
from orders.application.commands import (
    AddOrderItem,
    AddProduct,
    CancelOrder,
    ChangeProductPrice,
    ItemRequest,
    PlaceOrder,
    RegisterCustomer,
    RestockProduct,
    ShipOrder,
)
from orders.application.queries import (
    MAX_PAGE_SIZE,
    MAX_REPORT_DAYS,
    GetCustomer,
    GetOrder,
    GetProduct,
    GetSalesReport,
    ListCustomerOrders,
    SearchOrders,
)
from orders.application.views import (
    MAX_PAGE,
    MAX_SEARCH_TEXT,
    CustomerView,
    OrderSearchHit,
    OrderSummary,
    OrderView,
    Page,
    ProductView,
    SalesReport,
    SearchAmount,
    SearchCriteria,
    SearchMoment,
    SearchText,
    SortField,
    SortOrder,
)
from orders.auth import InvalidToken, Principal
from orders.bootstrap import Services, open_services
from orders.domain.errors import EmailTaken, InsufficientStock, OrderNotModifiable, SkuTaken
from orders.domain.values import OrderStatus
from orders.operations import projection_health
from orders.schemas import (
    AddProductBody,
    CancelBody,
    CustomerCreated,
    ItemBody,
    OrderChanged,
    PlaceOrderBody,
    PriceBody,
    ProductChanged,
    ProjectionInfo,
    RegisterCustomerBody,
    RestockBody,
    ShipBody,
)
from orders.settings import Settings

__all__ = ["create_app"]

PREFIX = "/api/v1"


# -- who is calling -------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="A token from `orders token`.")


def _services_of(request: Request) -> Services:
    # A check that `python -O` keeps: a plain assert would be stripped there.
    services = app_services(request.app)
    if not isinstance(services, Services):
        raise TypeError("the app was not made by orders.api.create_app")
    return services


async def _services(request: Request) -> Services:
    # A coroutine, like every dependency here: FastAPI runs plain functions in its thread pool.
    return _services_of(request)


ServicesDep = Annotated[Services, Depends(_services)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal | None:
    if credentials is None:
        if "authorization" in request.headers:
            # Credentials that are not a bearer token ("Basic ...", "Bearer " alone) are
            # refused, not quietly taken for an anonymous call.
            raise _unauthorized("the Authorization header must be 'Bearer <token>'")
        return None
    # The services from the app itself, not through a dependency: every dependency
    # FastAPI solves costs a GetOrder a few per cent of its CPU.
    services = _services_of(request)
    try:
        return services.tokens.verify(credentials.credentials)
    except InvalidToken as exc:
        raise _unauthorized(str(exc)) from None


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def optional_principal(request: Request, credentials: Bearer) -> Principal | None:
    """The caller, when a bearer token is given (a bad one is still refused)."""
    return _caller(request, credentials)


async def principal(request: Request, credentials: Bearer) -> Principal:
    """The authenticated caller; 401 without a valid bearer token."""
    caller = _caller(request, credentials)
    if caller is None:
        raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    return caller


async def staff(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller, who must be staff; 403 for customers."""
    if not caller.is_staff:
        raise HTTPException(403, "only staff may do this")
    return caller


Caller = Annotated[Principal, Depends(principal)]
Staff = Annotated[Principal, Depends(staff)]


def _own_customer(caller: Principal, customer_id: UUID) -> None:
    """404 when a customer asks about another customer: existence must not leak."""
    if not caller.is_staff and caller.customer_id != customer_id:
        raise HTTPException(404, f"customer {customer_id} does not exist")


def _metadata(request: Request, caller: Principal | None) -> Metadata:
    """The command's metadata: its id from the Idempotency-Key (scoped to the caller, so
    two callers' keys never meet), the caller as user, the correlation id if given.

    A new aggregate takes the command's id as its own: a retried request then builds the
    very same command, which the idempotency record recognises."""
    return command_metadata(
        request,
        user_id=None if caller is None else caller.subject,
        scope="anonymous" if caller is None else f"{caller.role}:{caller.subject}",
    )


async def _send(
    request: Request, services: Services, caller: Principal | None, command: Command
) -> CommandResult:
    return await services.command_bus.send(command.with_metadata(_metadata(request, caller)))


# -- answers ---------------------------------------------------------------------------


def _created(result: CommandResult, key: str, location: str) -> Response:
    return command_response(result, {key: result.aggregate_id}, status_code=201, location=location)


def _changed(result: CommandResult, key: str) -> Response:
    return command_response(result, {key: result.aggregate_id}, status_code=200)


def _found(item: Any, what: str, id: UUID) -> Any:
    if item is None:
        raise HTTPException(404, f"{what} {id} does not exist")
    return item


# -- routes ---------------------------------------------------------------------------

AUTH = problem_responses(401, 403)
CREATED = {**command_responses(201), **AUTH}
CHANGED = {**command_responses(200), **AUTH}
READ = {**QUERY_RESPONSES, **problem_responses(401, 403)}  # with 404 (Stale-Read), 422, 503
VERSIONED_READ = {
    **READ,
    200: {
        **QUERY_RESPONSES[200],
        "headers": {
            **QUERY_RESPONSES[200]["headers"],
            "ETag": {
                "description": "The version read; send it back as If-Match to change only it.",
                "schema": {"type": "string"},
            },
        },
    },
}

customers = APIRouter(prefix=PREFIX, tags=["customers"])
products = APIRouter(prefix=PREFIX, tags=["products"])
orders = APIRouter(prefix=PREFIX, tags=["orders"])
reports = APIRouter(prefix=PREFIX, tags=["reports"])
operations = APIRouter(prefix=PREFIX, tags=["operations"])

IfMatch = Annotated[int | None, Depends(if_match_version)]


@customers.post("/customers", status_code=201, response_model=CustomerCreated, responses=CREATED)
async def register_customer(
    body: RegisterCustomerBody,
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal | None, Depends(optional_principal)],
) -> Response:
    """Register a customer (open to anyone); the e-mail address must be new."""
    meta = _metadata(request, caller)
    command = RegisterCustomer(
        customer_id=meta.message_id, name=body.name, email=body.email, metadata=meta
    )
    result = await services.command_bus.send(command)
    return _created(result, "customer_id", f"{PREFIX}/customers/{result.aggregate_id}")


@customers.get(
    "/customers/{customer_id}",
    response_model=CustomerView,
    responses=READ,
    dependencies=[Depends(read_your_writes("customers"))],
)
async def get_customer(customer_id: UUID, services: ServicesDep, caller: Caller) -> CustomerView:
    """A customer's profile (staff, or the customer themself)."""
    _own_customer(caller, customer_id)
    view = await services.query_bus.ask(GetCustomer(customer_id=customer_id))
    return _found(view, "customer", customer_id)  # type: ignore[no-any-return]


@customers.get(
    "/customers/{customer_id}/orders",
    response_model=Page[OrderSummary],
    responses=READ,
    dependencies=[Depends(read_your_writes("order_details"))],
)
async def list_customer_orders(
    customer_id: UUID,
    services: ServicesDep,
    caller: Caller,
    status: OrderStatus | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> Page[OrderSummary]:
    """A customer's orders, newest first, optionally of one status."""
    _own_customer(caller, customer_id)
    return await services.query_bus.ask(
        ListCustomerOrders(customer_id=customer_id, status=status, page=page, page_size=page_size)
    )


@products.post("/products", status_code=201, response_model=ProductChanged, responses=CREATED)
async def add_product(
    body: AddProductBody, request: Request, services: ServicesDep, caller: Staff
) -> Response:
    """Add a product to the catalog (staff); the SKU must be new."""
    meta = _metadata(request, caller)
    command = AddProduct(
        product_id=meta.message_id,
        sku=body.sku,
        name=body.name,
        price=body.price,
        stock=body.stock,
        metadata=meta,
    )
    result = await services.command_bus.send(command)
    return _created(result, "product_id", f"{PREFIX}/products/{result.aggregate_id}")


@products.post("/products/{product_id}/restock", response_model=ProductChanged, responses=CHANGED)
async def restock_product(
    product_id: UUID,
    body: RestockBody,
    request: Request,
    services: ServicesDep,
    caller: Staff,
    expected: IfMatch,
) -> Response:
    """Add units to a product's stock (staff)."""
    command = RestockProduct(
        product_id=product_id, quantity=body.quantity, expected_version=expected
    )
    return _changed(await _send(request, services, caller, command), "product_id")


@products.post("/products/{product_id}/price", response_model=ProductChanged, responses=CHANGED)
async def change_price(
    product_id: UUID,
    body: PriceBody,
    request: Request,
    services: ServicesDep,
    caller: Staff,
    expected: IfMatch,
) -> Response:
    """Change a product's price (staff); placed orders keep theirs."""
    command = ChangeProductPrice(product_id=product_id, price=body.price, expected_version=expected)
    return _changed(await _send(request, services, caller, command), "product_id")


@products.get(
    "/products/{product_id}",
    response_model=ProductView,
    responses=VERSIONED_READ,
    dependencies=[Depends(read_your_writes("catalog"))],
)
async def get_product(
    product_id: UUID, response: Response, services: ServicesDep, caller: Caller
) -> ProductView:
    """A product with its available stock."""
    view = _found(
        await services.query_bus.ask(GetProduct(product_id=product_id)), "product", product_id
    )
    response.headers["ETag"] = etag(view.version)
    return view  # type: ignore[no-any-return]


@orders.post("/orders", status_code=201, response_model=OrderChanged, responses=CREATED)
async def place_order(
    body: PlaceOrderBody, request: Request, services: ServicesDep, caller: Caller
) -> Response:
    """Place an order: prices come from the catalog and stock is reserved, all or nothing."""
    meta = _metadata(request, caller)
    command = PlaceOrder(
        order_id=meta.message_id,
        customer_id=body.customer_id,
        items=tuple(ItemRequest(product_id=i.product_id, quantity=i.quantity) for i in body.items),
        shipping_address=body.shipping_address,
        acting_customer_id=caller.customer_id,
        metadata=meta,
    )
    result = await services.command_bus.send(command)
    return _created(result, "order_id", f"{PREFIX}/orders/{result.aggregate_id}")


@orders.get(
    "/orders/search",
    response_model=Page[OrderSearchHit],
    responses=READ,
    dependencies=[Depends(read_your_writes("order_search"))],
)
async def search_orders(
    services: ServicesDep,
    caller: Caller,
    q: Annotated[
        SearchText | None,
        Query(description=f"Words to find (at most {MAX_SEARCH_TEXT} characters)."),
    ] = None,
    status: OrderStatus | None = None,
    min_total: SearchAmount | None = None,
    max_total: SearchAmount | None = None,
    placed_from: SearchMoment | None = None,
    placed_to: SearchMoment | None = None,
    sort_by: SortField = SortField.PLACED_AT,
    sort_order: SortOrder = SortOrder.DESC,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> Page[OrderSearchHit]:
    """Search orders by text (customer, e-mail, product, SKU, order id, city) and filters.

    Customers see only their own orders. `total` is exact when the search is filtered by
    `status` alone or not at all; otherwise matches are counted up to 10,000, and
    `total_is_exact` is false when there are more."""
    criteria = SearchCriteria(
        text=q,
        status=status,
        min_total=min_total,
        max_total=max_total,
        placed_from=placed_from,
        placed_to=placed_to,
        customer_id=caller.customer_id,
        sort_by=sort_by,
        sort_order=sort_order,
        page=page,
        page_size=page_size,
    )
    return await services.query_bus.ask(SearchOrders(criteria=criteria))


@orders.get(
    "/orders/{order_id}",
    response_model=OrderView,
    responses=VERSIONED_READ,
    dependencies=[Depends(read_your_writes("order_details"))],
)
async def get_order(
    order_id: UUID, request: Request, response: Response, caller: Caller
) -> OrderView:
    """An order in full, with an ETag of its version (send it back as If-Match)."""
    # The services from the app, not through ServicesDep: each dependency FastAPI solves
    # costs the busiest query a few per cent of its CPU.
    services = await _services(request)
    view = await services.query_bus.ask(GetOrder(order_id=order_id, customer_id=caller.customer_id))
    order: OrderView = _found(view, "order", order_id)
    response.headers["ETag"] = etag(order.version)
    return order


@orders.post("/orders/{order_id}/items", response_model=OrderChanged, responses=CHANGED)
async def add_order_item(
    order_id: UUID,
    body: ItemBody,
    request: Request,
    services: ServicesDep,
    caller: Caller,
    expected: IfMatch,
) -> Response:
    """Add a line to a placed order, reserving its stock."""
    command = AddOrderItem(
        order_id=order_id,
        product_id=body.product_id,
        quantity=body.quantity,
        acting_customer_id=caller.customer_id,
        expected_version=expected,
    )
    return _changed(await _send(request, services, caller, command), "order_id")


@orders.post("/orders/{order_id}/ship", response_model=OrderChanged, responses=CHANGED)
async def ship_order(
    order_id: UUID,
    body: ShipBody,
    request: Request,
    services: ServicesDep,
    caller: Staff,
    expected: IfMatch,
) -> Response:
    """Ship a placed order (staff)."""
    command = ShipOrder(
        order_id=order_id, tracking_number=body.tracking_number, expected_version=expected
    )
    return _changed(await _send(request, services, caller, command), "order_id")


@orders.post("/orders/{order_id}/cancel", response_model=OrderChanged, responses=CHANGED)
async def cancel_order(
    order_id: UUID,
    body: CancelBody,
    request: Request,
    services: ServicesDep,
    caller: Caller,
    expected: IfMatch,
) -> Response:
    """Cancel an order that has not shipped; its stock goes back."""
    command = CancelOrder(
        order_id=order_id,
        reason=body.reason,
        acting_customer_id=caller.customer_id,
        expected_version=expected,
    )
    return _changed(await _send(request, services, caller, command), "order_id")


@reports.get(
    "/reports/sales",
    response_model=SalesReport,
    responses=READ,
    dependencies=[Depends(read_your_writes("sales_report"))],
)
async def sales_report(
    services: ServicesDep,
    caller: Staff,
    from_day: Annotated[date, Query(alias="from")],
    to_day: Annotated[date, Query(alias="to")],
    top: Annotated[int, Query(ge=1, le=20)] = 5,
) -> SalesReport:
    """Sales per day between two days, inclusive (staff)."""
    if to_day < from_day:
        raise HTTPException(422, "'to' must not be before 'from'")
    if (to_day - from_day).days >= MAX_REPORT_DAYS:
        raise HTTPException(422, f"a report covers at most {MAX_REPORT_DAYS} days")
    return await services.query_bus.ask(GetSalesReport(from_day=from_day, to_day=to_day, top=top))


@operations.get("/projections", response_model=list[ProjectionInfo], responses=READ)
async def projections(services: ServicesDep, caller: Staff) -> list[ProjectionInfo]:
    """The status of every projection (staff)."""
    return [
        ProjectionInfo(
            name=h.name,
            version=h.version,
            state=h.state,
            checkpoint=h.checkpoint,
            events_behind=h.events_behind,
            seconds_behind=h.seconds_behind,
            parked=h.parked,
            last_error=h.last_error,
        )
        for h in await projection_health(services)
    ]


OPENAPI_TAGS = ("customers", "products", "orders", "reports", "operations", "admin")
"""The documentation's order of the routers, whatever order they are tried in."""

DOMAIN_STATUSES: dict[type[Exception], int] = {
    EmailTaken: 409,
    SkuTaken: 409,
    InsufficientStock: 409,
    OrderNotModifiable: 409,
}


def create_app(
    settings: Settings,
    *,
    run_projections: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The Orders app: the API, its error mapping, health checks and metrics, with the
    stores (and, by default, the projection runner) opened for the app's lifetime.

    Request bodies past ``max_body_bytes`` (64 KiB: the largest valid body, a 100-line
    order, is under 13 KiB) are refused with 413."""
    metrics = CollectorRegistry()
    app = FastAPI(
        title="Orders",
        version="1.0",
        summary="The reference service of cqrskit: customers, products with stock, orders.",
        description=API_DESCRIPTION,
        openapi_tags=[{"name": tag} for tag in OPENAPI_TAGS],
        lifespan=cqrs_lifespan(
            lambda: open_services(settings, run_projections=run_projections, metrics=metrics)
        ),
    )
    install_problem_handlers(app, DOMAIN_STATUSES)
    install_body_limit(app, max_body_bytes)
    install_metrics(app, metrics)
    install_health(app)
    # FastAPI tries routes one by one, and a request to a router included late pays for
    # matching every route before it (twice for its own router): the orders, which take
    # the most requests, come first. (Their paths share no prefix with the others', so the
    # order changes no answer; openapi_tags keeps the documentation's order.)
    for router in (orders, customers, products, reports, operations):
        app.include_router(router)
    from orders.admin import router as admin  # not at the top: orders.admin imports this module

    app.include_router(admin)
    return app


API_DESCRIPTION = """
Commands (POST) answer with the id they created or changed and a `Consistency-Token`
header; send that header on a later GET to read your own write (the query waits up to a
couple of seconds for the read model, then answers with `Stale-Read: true`).
Send `Idempotency-Key` on a command to make retries safe, and a GET's `ETag` back as
`If-Match` to change only that version. Errors are `application/problem+json`.
Authenticate with `Authorization: Bearer <token>` (`orders token --staff`).
"""
