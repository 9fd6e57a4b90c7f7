"""``orders verify``: do the read models and the write side's rules still agree with the
events? Runs beside a live service (its own connections to the same stores), changing
nothing the service uses.

- Read models: each projection is rebuilt into a scratch version up to the live
  version's checkpoint and compared with it (:func:`cqrskit.projection.verify`).
- Invariants, from the events alone: every product's stock balances (initial + restocks
  - reservations + releases, never below zero, as the Product aggregate counts it, and
  as the catalog read model shows it); every order line carries the catalog price,
  SKU and name in effect when it was added; every order total is the sum of its lines;
  every line's stock was reserved for its order (and given back when it was cancelled).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from rich.console import Console

from cqrskit.projection import Projection
from cqrskit.projection.verify import VerifyError, VerifyReport, read_version, verify_projection
from cqrskit.readstore import ReadStore
from cqrskit.store.base import START, EventStore, Position, RecordedEvent
from orders.domain import Product
from orders.domain.events import (
    OrderCancelled,
    OrderItemAdded,
    OrderPlaced,
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    StockReleased,
    StockReserved,
)
from orders.domain.values import OrderLine
from orders.settings import Settings

__all__ = [
    "InvariantReport",
    "Outcome",
    "Violation",
    "check_invariants",
    "run_verify",
    "verify_service",
]

MAX_ATTEMPTS = 10
"""Reads of a live model before giving up: a busy Redis model may move during a read."""


@dataclass(frozen=True, slots=True)
class Violation:
    """A rule of the write side that the events break (``expected`` vs ``actual``)."""

    invariant: str
    subject: str
    expected: Any
    actual: Any
    at: str = ""
    """The position of the event where it showed, if one event shows it."""


@dataclass(slots=True)
class InvariantReport:
    """What :func:`check_invariants` found in the events up to ``position``."""

    position: Position
    products: int = 0
    orders: int = 0
    violations: list[Violation] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    """Everything ``orders verify`` found."""

    projections: list[VerifyReport] = field(default_factory=list)
    invariants: InvariantReport | None = None

    @property
    def count(self) -> int:
        """Differences and violations together."""
        found = sum(len(r.differences) for r in self.projections)
        return found + (len(self.invariants.violations) if self.invariants else 0)


_PRODUCT_EVENTS = (
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    StockReserved,
    StockReleased,
)
"""The events of a product's stream."""


@dataclass(slots=True)
class _Stock:
    sku: str = ""
    name: str = ""
    price: Decimal = Decimal(0)
    initial: int = 0
    restocked: int = 0
    reserved: int = 0
    released: int = 0
    history: list[Any] = field(default_factory=list)

    @property
    def available(self) -> int:
        return self.initial + self.restocked - self.reserved + self.released


@dataclass(slots=True)
class _Replay:
    report: InvariantReport
    products: dict[UUID, _Stock] = field(default_factory=dict)
    totals: dict[UUID, Decimal] = field(default_factory=dict)
    cancelled: set[UUID] = field(default_factory=set)
    ordered: dict[tuple[UUID, UUID], int] = field(default_factory=lambda: defaultdict(int))
    reserved: dict[tuple[UUID, UUID], int] = field(default_factory=lambda: defaultdict(int))
    released: dict[tuple[UUID, UUID], int] = field(default_factory=lambda: defaultdict(int))

    def violation(
        self, invariant: str, subject: str, expected: Any, actual: Any, at: Position | None = None
    ) -> None:
        where = "" if at is None else str(at)
        self.report.violations.append(Violation(invariant, subject, expected, actual, where))

    def apply(self, recorded: RecordedEvent) -> None:
        event, at = recorded.event, recorded.position
        match event:
            case ProductAdded(product_id=pid, sku=sku, name=name, price=price, stock=stock):
                self.products[pid] = _Stock(sku, name, price, initial=stock)
            case ProductPriceChanged(product_id=pid, price=price) if pid in self.products:
                self.products[pid].price = price
            case ProductRestocked(product_id=pid, quantity=n) if pid in self.products:
                self.products[pid].restocked += n
            case StockReserved(product_id=pid, order_id=oid, quantity=n) if pid in self.products:
                self.products[pid].reserved += n
                self.reserved[(oid, pid)] += n
            case StockReleased(product_id=pid, order_id=oid, quantity=n) if pid in self.products:
                self.products[pid].released += n
                self.released[(oid, pid)] += n
            case OrderPlaced(order_id=oid, lines=lines, total=total):
                self.report.orders += 1
                for line in lines:
                    self._line(oid, line, at)
                self._total(
                    oid, "order placed", sum((x.total for x in lines), Decimal(0)), total, at
                )
            case OrderItemAdded(order_id=oid, line=line, total=total):
                self._line(oid, line, at)
                self._total(
                    oid, "item added", self.totals.get(oid, Decimal(0)) + line.total, total, at
                )
            case OrderCancelled(order_id=oid, total=total):
                self.cancelled.add(oid)
                self._total(oid, "order cancelled", self.totals.get(oid, Decimal(0)), total, at)
            case ProductRestocked() | ProductPriceChanged() | StockReserved() | StockReleased():
                self.violation(
                    "product-exists", f"product {event.product_id}", "added", None, at=at
                )
        if isinstance(event, _PRODUCT_EVENTS):
            product = self.products.get(event.product_id)
            if product is not None:
                product.history.append(event)
                if product.available < 0:
                    what = f"product {event.product_id}"
                    self.violation("stock-not-negative", what, ">= 0", product.available, at=at)

    def _line(self, order_id: UUID, line: OrderLine, at: Position) -> None:
        self.ordered[(order_id, line.product_id)] += line.quantity
        subject = f"order {order_id} line {line.product_id}"
        product = self.products.get(line.product_id)
        if product is None:
            self.violation("line-product", subject, "a product added before", None, at=at)
            return
        expected = (product.sku, product.name, product.price)
        actual = (line.sku, line.name, line.unit_price)
        if expected != actual:
            self.violation(
                "line-price", subject, list(map(str, expected)), list(map(str, actual)), at=at
            )

    def _total(
        self, order_id: UUID, what: str, expected: Decimal, actual: Decimal, at: Position
    ) -> None:
        self.totals[order_id] = expected
        if expected != actual:
            self.violation(
                "order-total", f"order {order_id} ({what})", str(expected), str(actual), at=at
            )

    def finish(self) -> None:
        self.report.products = len(self.products)
        for pid, stock in self.products.items():
            counted = Product.from_events(str(pid), stock.history).available
            if counted != stock.available:
                self.violation("stock-balance", f"product {pid}", stock.available, counted)
        for key in sorted(self.ordered.keys() | self.reserved.keys(), key=str):
            order, product = key
            subject = f"order {order} product {product}"
            if self.reserved.get(key, 0) != self.ordered.get(key, 0):
                self.violation(
                    "reservation", subject, self.ordered.get(key, 0), self.reserved.get(key, 0)
                )
            given_back = self.reserved.get(key, 0) if order in self.cancelled else 0
            if self.released.get(key, 0) != given_back:
                self.violation("release", subject, given_back, self.released.get(key, 0))


async def check_invariants(
    event_store: EventStore,
    catalog_store: ReadStore[Any],
    catalog: Projection[Any],
    *,
    batch_size: int = 1000,
) -> InvariantReport:
    """Replay every event up to the head and check the write side's rules, and compare
    each product's stock with the catalog read model's, as of the catalog's checkpoint."""
    live = await catalog_store.live_version(catalog.name)
    shown = None if live is None else await read_version(catalog_store, catalog, live)
    if shown is None:
        raise VerifyError("the catalog read model could not be read (no live version)")
    head = await event_store.head()
    replay = _Replay(InvariantReport(head))
    at_checkpoint: dict[UUID, int] | None = None
    after = START
    while after < head:
        page = await event_store.read_all(after, batch_size)
        if not page:
            break
        for recorded in page:
            if recorded.position > head:
                break
            if at_checkpoint is None and recorded.position > shown.checkpoint:
                at_checkpoint = {pid: s.available for pid, s in replay.products.items()}
            replay.apply(recorded)
            after = recorded.position
        if page[-1].position > head:
            break
    if at_checkpoint is None:
        at_checkpoint = {pid: s.available for pid, s in replay.products.items()}
    rows = {str(row["product_id"]): row for row in shown.entries.values()}
    for pid in sorted(at_checkpoint.keys() | {UUID(p) for p in rows}, key=str):
        row = rows.get(str(pid))
        expected, actual = (
            at_checkpoint.get(pid),
            None if row is None else int(row["available_stock"]),
        )
        if expected != actual:
            replay.violation(
                "catalog-stock", f"product {pid}", expected, actual, at=shown.checkpoint
            )
    replay.finish()
    return replay.report


async def verify_service(settings: Settings, projection: str | None = None) -> Outcome:
    """Verify every read model of the service (or the one named) and, when all are
    verified, the write side's invariants. Raises :class:`LookupError` for an unknown
    projection name."""
    from orders.bootstrap import PROJECTIONS, open_services

    if projection is not None and projection not in PROJECTIONS:
        raise LookupError(f"no projection {projection!r}; the service has {', '.join(PROJECTIONS)}")
    outcome = Outcome()
    async with open_services(settings, run_projections=False) as services:
        for name, model in services.projections.items():
            if projection in (None, name):
                outcome.projections.append(
                    await verify_projection(
                        services.event_store,
                        services.read_stores[name],
                        model,
                        max_attempts=MAX_ATTEMPTS,
                    )
                )
        if projection is None:
            outcome.invariants = await check_invariants(
                services.event_store,
                services.read_stores["catalog"],
                services.projections["catalog"],
            )
    return outcome


def _shown(value: Any) -> str:
    return "(none)" if value is None else repr(value)


def print_text(outcome: Outcome, console: Console) -> None:
    """The differences, grouped by projection, table and key (or by invariant)."""

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    for report in outcome.projections:
        n = len(report.differences)
        say(
            f"{report.projection} v{report.version} at {report.position}: "
            f"{report.compared} entr{'y' if report.compared == 1 else 'ies'} compared, "
            f"{n} difference{'s' if n != 1 else ''}"
        )
        group = None
        for d in report.differences:
            if (d.table, d.key) != group:
                group = (d.table, d.key)
                say(f"  {' '.join(p for p in group if p)}")
            if isinstance(d.expected, dict) and isinstance(d.actual, dict):
                for column in d.expected:
                    expected, actual = _shown(d.expected[column]), _shown(d.actual[column])
                    say(f"    {column}: expected {expected}, actual {actual}")
            else:
                say(f"    expected {_shown(d.expected)}")
                say(f"    actual   {_shown(d.actual)}")
    if outcome.invariants is not None:
        inv = outcome.invariants
        n = len(inv.violations)
        say(
            f"invariants up to {inv.position}: {inv.products} products, {inv.orders} orders, "
            f"{n} violation{'s' if n != 1 else ''}"
        )
        for v in inv.violations:
            where = f" (at {v.at})" if v.at else ""
            expected, actual = _shown(v.expected), _shown(v.actual)
            say(f"  {v.invariant}: {v.subject}{where}: expected {expected}, actual {actual}")
    say(f"{outcome.count} difference{'s' if outcome.count != 1 else ''}")


def as_json(outcome: Outcome) -> str:
    """The outcome as one JSON document (values that JSON lacks become strings)."""
    document = {
        "differences": outcome.count,
        "projections": [
            {
                "projection": r.projection,
                "version": r.version,
                "position": str(r.position),
                "compared": r.compared,
                "attempts": r.attempts,
                "differences": [
                    {"table": d.table, "key": d.key, "expected": d.expected, "actual": d.actual}
                    for d in r.differences
                ],
            }
            for r in outcome.projections
        ],
        "invariants": None
        if outcome.invariants is None
        else {
            "position": str(outcome.invariants.position),
            "products": outcome.invariants.products,
            "orders": outcome.invariants.orders,
            "violations": [asdict(v) for v in outcome.invariants.violations],
        },
    }
    return json.dumps(document, default=str, indent=2)


async def _cancellable(settings: Settings, projection: str | None) -> Outcome:
    # SIGTERM cancels like Ctrl-C does, so the scratch versions are dropped either way.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await verify_service(settings, projection)


def run_verify(settings: Settings, projection: str | None, *, json_output: bool) -> int:
    """Run ``orders verify`` and print what it found; the exit code: 0 when nothing was
    found, 1 when something was, 2 when it could not verify, 130 when interrupted."""
    out, err = Console(), Console(stderr=True)
    try:
        outcome = asyncio.run(_cancellable(settings, projection))
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print("interrupted; scratch versions dropped", markup=False)
        return 130
    except Exception as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    if json_output:
        print(as_json(outcome))
    else:
        print_text(outcome, out)
    return 1 if outcome.count else 0
