"""Fixtures of the command-handler tests: a scenario on the service's handlers, sample data."""

from decimal import Decimal
from uuid import UUID

import pytest

from cqrskit import EventRegistry
from cqrskit.testing import CommandScenario
from orders.application.command_handlers import COMMAND_HANDLERS
from orders.domain import ALL_EVENTS, Address, CustomerRegistered, ProductAdded

ADDRESS = Address(street="1 Main St", city="Springfield", postal_code="12345", country="US")


@pytest.fixture
def scenario() -> CommandScenario:
    return CommandScenario(EventRegistry(ALL_EVENTS), COMMAND_HANDLERS)


def registered(customer_id: UUID, name: str = "Ada") -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id, name=name, email=f"{name.lower()}@example.com"
    )


def added(
    product_id: UUID, sku: str = "TEA-1", price: str = "4.50", stock: int = 10
) -> ProductAdded:
    return ProductAdded(
        product_id=product_id, sku=sku, name=sku.title(), price=Decimal(price), stock=stock
    )
