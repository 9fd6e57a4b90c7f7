"""The command handlers of the orders service: load aggregates, call the domain, return an id.

Each handler works only through its unit of work; the bus commits everything the handler
touched as one atomic append, so a command that changes several streams (an order and the
products whose stock it reserves) writes all of them or nothing. Uniqueness of e-mail
addresses and SKUs is enforced the same way, by a reservation stream appended together
with the customer or product, never by looking at a read model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from uuid import UUID

from prometheus_client import CollectorRegistry

from cqrskit import (
    Aggregate,
    AggregateNotFound,
    Command,
    CommandBus,
    CommandResult,
    DomainError,
    EventStore,
    IdempotencyMiddleware,
    Middleware,
    Repository,
    RetryOnConflict,
    UnitOfWork,
)
from cqrskit.errors import UnexpectedVersion
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
from orders.domain import (
    Customer,
    EmailReservation,
    Order,
    OrderLine,
    Product,
    SkuReservation,
)

__all__ = [
    "COMMAND_HANDLERS",
    "ONE_WRITER_AT_A_TIME",
    "RETRY_ATTEMPTS",
    "RETRY_BASE_DELAY",
    "RETRY_MAX_DELAY",
    "SNAPSHOT_EVERY",
    "add_order_item",
    "add_product",
    "cancel_order",
    "change_product_price",
    "command_middleware",
    "command_repository",
    "place_order",
    "register_command_handlers",
    "register_customer",
    "restock_product",
    "ship_order",
]

RETRY_ATTEMPTS = 50
"""How often a command is tried when its append loses a race. A popular product is one
stream that every order for it appends to: under N concurrent orders, the last one may
lose N - 1 times before it wins (or finds the stock gone), so this must exceed the
concurrency the service expects on one product."""

RETRY_BASE_DELAY = 0.002
"""Seconds: the ceiling of the first jittered wait between tries; it doubles each try."""

RETRY_MAX_DELAY = 0.05
"""Seconds: the highest ceiling of the jittered wait. Kept low so that a contended order
is retried soon; the jitter, not a long wait, is what spreads the writers apart."""

SNAPSHOT_EVERY: dict[type[Aggregate], int] = {Product: 20}
"""The repository's ``snapshot_every``: every order appends to its products' streams, so
a product is loaded from its latest snapshot and the fewer than 20 events after it,
however many orders it has had. (Customers and orders have short streams.)"""

ONE_WRITER_AT_A_TIME: frozenset[type[Aggregate]] = frozenset({Product})
"""The repository's ``one_writer_at_a_time``: a popular product is one stream that many
orders append to at once; in one process they queue for it rather than race for it and
retry (the handlers load products in sorted order, so no two ever wait for each other)."""


def command_repository(store: EventStore) -> Repository:
    """The repository the service's commands run with (snapshots, one writer per product)."""
    return Repository(
        store, snapshot_every=SNAPSHOT_EVERY, one_writer_at_a_time=ONE_WRITER_AT_A_TIME
    )


def command_middleware(
    store: EventStore, registry: CollectorRegistry | None = None
) -> list[Middleware[Command, CommandResult]]:
    """The command-bus middleware the service runs with, outermost first: idempotency by
    command id, then retry on a lost race (each try reloads its aggregates), counting
    the lost races in ``registry`` when given."""
    return [
        IdempotencyMiddleware(store),
        RetryOnConflict(
            attempts=RETRY_ATTEMPTS,
            base_delay=RETRY_BASE_DELAY,
            max_delay=RETRY_MAX_DELAY,
            registry=registry,
        ),
    ]


# -- customers ---------------------------------------------------------------------------


async def register_customer(command: RegisterCustomer, uow: UnitOfWork) -> str:
    """Register a customer and claim the e-mail address in the same append."""
    customer_id = str(command.customer_id)
    if await uow.find(Customer, customer_id) is not None:
        raise DomainError(f"customer {customer_id} already exists; choose another id")
    reservation_id = EmailReservation.id_for(command.email)
    reservation = await uow.find(EmailReservation, reservation_id) or uow.add(
        EmailReservation(reservation_id)
    )
    reservation.claim(command.customer_id)
    uow.add(Customer.register(command.customer_id, command.name, command.email))
    return customer_id


# -- the catalog -------------------------------------------------------------------------


async def add_product(command: AddProduct, uow: UnitOfWork) -> str:
    """Add a product and claim its SKU in the same append."""
    product_id = str(command.product_id)
    if await uow.find(Product, product_id) is not None:
        raise DomainError(f"product {product_id} already exists; choose another id")
    reservation_id = SkuReservation.id_for(command.sku)
    reservation = await uow.find(SkuReservation, reservation_id) or uow.add(
        SkuReservation(reservation_id)
    )
    reservation.claim(command.product_id)
    uow.add(
        Product.add(command.product_id, command.sku, command.name, command.price, command.stock)
    )
    return product_id


async def restock_product(command: RestockProduct, uow: UnitOfWork) -> str:
    """Add units to a product's stock."""
    product = await uow.load(
        Product, str(command.product_id), expected_version=command.expected_version
    )
    product.restock(command.quantity)
    return product.id


async def change_product_price(command: ChangeProductPrice, uow: UnitOfWork) -> str:
    """Change a product's catalog price."""
    product = await uow.load(
        Product, str(command.product_id), expected_version=command.expected_version
    )
    product.change_price(command.price)
    return product.id


# -- orders ------------------------------------------------------------------------------


async def place_order(command: PlaceOrder, uow: UnitOfWork) -> str:
    """Place an order at catalog prices, reserving the stock of every line in one append."""
    customer_id = str(command.customer_id)
    if command.acting_customer_id is not None and command.acting_customer_id != command.customer_id:
        # The same answer as for a customer that does not exist: whether another customer
        # exists is none of this customer's business.
        raise AggregateNotFound(Customer.category, customer_id)
    _refuse_repeated_products(command.items)
    await uow.load(Customer, customer_id)
    order_id = str(command.order_id)
    if await uow.find(Order, order_id) is not None:
        raise DomainError(f"order {order_id} already exists; choose another id")
    products = await _load_products(uow, (item.product_id for item in command.items))
    lines = []
    for item in command.items:
        product = products[item.product_id]
        product.reserve(command.order_id, item.quantity)
        lines.append(_line_from_catalog(product, item.quantity))
    uow.add(Order.place(command.order_id, command.customer_id, lines, command.shipping_address))
    return order_id


async def add_order_item(command: AddOrderItem, uow: UnitOfWork) -> str:
    """Add a line at the catalog price to a placed order, reserving its stock."""
    order = await _load_order(
        uow,
        command.order_id,
        acting_customer_id=command.acting_customer_id,
        expected_version=command.expected_version,
    )
    product = await uow.load(Product, str(command.product_id))
    # The order's rules first, so that a cancelled order says so rather than "no stock".
    order.add_item(_line_from_catalog(product, command.quantity))
    product.reserve(order.order_id, command.quantity)
    return order.id


async def ship_order(command: ShipOrder, uow: UnitOfWork) -> str:
    """Ship a placed order."""
    order = await _load_order(uow, command.order_id, expected_version=command.expected_version)
    order.ship(command.tracking_number)
    return order.id


async def cancel_order(command: CancelOrder, uow: UnitOfWork) -> str:
    """Cancel an order and give its reserved stock back, in one append."""
    order = await _load_order(
        uow,
        command.order_id,
        acting_customer_id=command.acting_customer_id,
        expected_version=command.expected_version,
    )
    order.cancel(command.reason)
    quantities = order.quantities_by_product()
    for product_id, product in (await _load_products(uow, quantities)).items():
        product.release(order.order_id, quantities[product_id])
    return order.id


async def _load_order(
    uow: UnitOfWork,
    order_id: UUID,
    *,
    acting_customer_id: UUID | None = None,
    expected_version: int | None,
) -> Order:
    order = await uow.load(Order, str(order_id))
    if acting_customer_id is not None and order.customer_id != acting_customer_id:
        # Another customer's order answers exactly like a missing one, so ids cannot be probed.
        raise AggregateNotFound(Order.category, order.id)
    # Checked after ownership (not by uow.load), so a version mismatch cannot reveal that
    # someone else's order exists either.
    if expected_version is not None and order.version != expected_version:
        raise UnexpectedVersion(Order.category, order.id, expected_version, order.version)
    return order


async def _load_products(uow: UnitOfWork, product_ids: Iterable[UUID]) -> dict[UUID, Product]:
    # load_many holds them in one order (sorted ids), so a command waiting for a product
    # another command holds (:data:`ONE_WRITER_AT_A_TIME`) never holds one that the other
    # is waiting for; then reads them concurrently, which shortens how long the first is held.
    loaded = await uow.load_many(Product, (str(pid) for pid in product_ids))
    return {UUID(id): product for id, product in loaded.items()}


def _refuse_repeated_products(items: Iterable[ItemRequest]) -> None:
    seen: set[UUID] = set()
    for item in items:
        if item.product_id in seen:
            raise DomainError(
                f"product {item.product_id} appears more than once in the order; "
                "ask for it once with the total quantity"
            )
        seen.add(item.product_id)


def _line_from_catalog(product: Product, quantity: int) -> OrderLine:
    # Name, SKU and price come from the product as stored, never from the client.
    return OrderLine(
        product_id=product.product_id,
        sku=product.sku,
        name=product.name,
        unit_price=product.price,
        quantity=quantity,
    )


COMMAND_HANDLERS: dict[type[Command], Callable[[Any, UnitOfWork], Awaitable[str]]] = {
    RegisterCustomer: register_customer,
    AddProduct: add_product,
    RestockProduct: restock_product,
    ChangeProductPrice: change_product_price,
    PlaceOrder: place_order,
    AddOrderItem: add_order_item,
    ShipOrder: ship_order,
    CancelOrder: cancel_order,
}
"""Every command of the service and its handler (what :class:`CommandScenario` takes)."""


def register_command_handlers(bus: CommandBus) -> None:
    """Register the handler of every orders command on ``bus``."""
    for command_type, handler in COMMAND_HANDLERS.items():
        bus.register(command_type, handler)
