"""RegisterCustomer, AddProduct, RestockProduct, ChangeProductPrice through a real bus."""

from decimal import Decimal
from uuid import uuid4

import pytest

from cqrskit import AggregateNotFound, CommandBus, DomainError, EventRegistry, Repository
from cqrskit.errors import UnexpectedVersion
from cqrskit.store import MemoryEventStore
from cqrskit.testing import CommandScenario
from orders.application.command_handlers import COMMAND_HANDLERS, register_command_handlers
from orders.application.commands import (
    AddOrderItem,
    AddProduct,
    CancelOrder,
    ChangeProductPrice,
    PlaceOrder,
    RegisterCustomer,
    RestockProduct,
    ShipOrder,
)
from orders.domain import (
    ALL_EVENTS,
    Customer,
    CustomerRegistered,
    EmailClaimed,
    EmailReservation,
    EmailTaken,
    Product,
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    SkuClaimed,
    SkuReservation,
    SkuTaken,
)

from .conftest import added, registered


def test_every_command_has_a_handler() -> None:
    assert set(COMMAND_HANDLERS) == {
        RegisterCustomer,
        AddProduct,
        RestockProduct,
        ChangeProductPrice,
        PlaceOrder,
        AddOrderItem,
        ShipOrder,
        CancelOrder,
    }


async def test_register_command_handlers_wires_a_bus() -> None:
    store = MemoryEventStore(EventRegistry(ALL_EVENTS))
    bus = CommandBus(Repository(store))
    register_command_handlers(bus)
    result = await bus.send(RegisterCustomer(name="Ada", email="ada@example.com"))
    assert (await Repository(store).load(Customer, result.aggregate_id)).name == "Ada"


# -- RegisterCustomer --------------------------------------------------------------------


async def test_register_customer_claims_the_email_in_the_same_append(
    scenario: CommandScenario,
) -> None:
    customer_id = uuid4()
    command = RegisterCustomer(customer_id=customer_id, name="Ada", email=" Ada@Example.com ")
    await scenario.when(command)
    assert scenario.result is not None
    assert scenario.result.aggregate_id == str(customer_id)
    await scenario.then(
        {
            (Customer, str(customer_id)): [
                CustomerRegistered(customer_id=customer_id, name="Ada", email="Ada@Example.com")
            ],
            (EmailReservation, "ada@example.com"): [
                EmailClaimed(email="ada@example.com", customer_id=customer_id)
            ],
        }
    )
    causes = {e.event.metadata.causation_id for e in await scenario.new_events()}
    assert causes == {command.metadata.message_id}


@pytest.mark.parametrize(
    "email", ["ada@example.com", "ADA@Example.COM", "  ada@example.com  ", "\tAda@example.com\n"]
)
async def test_a_registered_email_is_refused_whatever_its_case_or_spacing(
    scenario: CommandScenario, email: str
) -> None:
    scenario.given(
        EmailReservation,
        "ada@example.com",
        EmailClaimed(email="ada@example.com", customer_id=uuid4()),
    )
    await scenario.when(RegisterCustomer(name="Ada Two", email=email))
    await scenario.then_raises(EmailTaken, match="ada@example.com")


async def test_registering_twice_through_the_bus_is_refused(scenario: CommandScenario) -> None:
    await scenario.bus.send(RegisterCustomer(name="Ada", email="ada@example.com"))
    await scenario.when(RegisterCustomer(name="Imposter", email="ADA@example.com"))
    await scenario.then_raises(EmailTaken)


async def test_a_customer_id_that_exists_is_refused(scenario: CommandScenario) -> None:
    customer_id = uuid4()
    scenario.given(Customer, str(customer_id), registered(customer_id))
    await scenario.when(RegisterCustomer(customer_id=customer_id, name="Bob", email="b@ex.com"))
    await scenario.then_raises(DomainError, match=f"customer {customer_id} already exists")


# -- AddProduct --------------------------------------------------------------------------


async def test_add_product_claims_the_sku_in_the_same_append(scenario: CommandScenario) -> None:
    product_id = uuid4()
    await scenario.when(
        AddProduct(product_id=product_id, sku="tea-1", name="Tea", price="4.50", stock=10)
    )
    assert scenario.result is not None
    assert scenario.result.aggregate_id == str(product_id)
    await scenario.then(
        {
            (Product, str(product_id)): [
                ProductAdded(
                    product_id=product_id, sku="tea-1", name="Tea", price=Decimal("4.50"), stock=10
                )
            ],
            (SkuReservation, "TEA-1"): [SkuClaimed(sku="TEA-1", product_id=product_id)],
        }
    )


@pytest.mark.parametrize("sku", ["TEA-1", "tea-1", " Tea-1 "])
async def test_a_taken_sku_is_refused(scenario: CommandScenario, sku: str) -> None:
    scenario.given(SkuReservation, "TEA-1", SkuClaimed(sku="TEA-1", product_id=uuid4()))
    await scenario.when(AddProduct(sku=sku, name="Other tea", price="1.00", stock=1))
    await scenario.then_raises(SkuTaken, match="TEA-1")


async def test_a_product_id_that_exists_is_refused(scenario: CommandScenario) -> None:
    product_id = uuid4()
    scenario.given(Product, str(product_id), added(product_id))
    await scenario.when(
        AddProduct(product_id=product_id, sku="CUP-1", name="Cup", price="3.00", stock=1)
    )
    await scenario.then_raises(DomainError, match=f"product {product_id} already exists")


# -- RestockProduct / ChangeProductPrice -------------------------------------------------


async def test_restock(scenario: CommandScenario) -> None:
    product_id = uuid4()
    scenario.given(Product, str(product_id), added(product_id))
    await scenario.when(RestockProduct(product_id=product_id, quantity=5))
    await scenario.then(
        {(Product, str(product_id)): [ProductRestocked(product_id=product_id, quantity=5)]}
    )


async def test_restock_of_an_unknown_product_is_not_found(scenario: CommandScenario) -> None:
    product_id = uuid4()
    with pytest.raises(AggregateNotFound) as caught:
        await scenario.when(RestockProduct(product_id=product_id, quantity=5))
    assert (caught.value.aggregate_type, caught.value.aggregate_id) == ("Product", str(product_id))
    assert await scenario.new_events() == []


async def test_change_price(scenario: CommandScenario) -> None:
    product_id = uuid4()
    scenario.given(Product, str(product_id), added(product_id, price="4.50"))
    await scenario.when(ChangeProductPrice(product_id=product_id, price="5.25"))
    await scenario.then(
        {
            (Product, str(product_id)): [
                ProductPriceChanged(
                    product_id=product_id, old_price=Decimal("4.50"), price=Decimal("5.25")
                )
            ]
        }
    )


async def test_an_unchanged_price_writes_nothing(scenario: CommandScenario) -> None:
    product_id = uuid4()
    scenario.given(Product, str(product_id), added(product_id, price="4.50"))
    await scenario.when(ChangeProductPrice(product_id=product_id, price="4.50"))
    await scenario.then({})


async def test_change_price_of_an_unknown_product_is_not_found(scenario: CommandScenario) -> None:
    with pytest.raises(AggregateNotFound):
        await scenario.when(ChangeProductPrice(product_id=uuid4(), price="5.00"))


# -- If-Match ----------------------------------------------------------------------------


async def test_product_commands_honour_the_expected_version(scenario: CommandScenario) -> None:
    product_id = uuid4()
    scenario.given(Product, str(product_id), added(product_id))
    await scenario.when(RestockProduct(product_id=product_id, quantity=1, expected_version=1))
    assert scenario.error is None
    with pytest.raises(UnexpectedVersion) as caught:
        await scenario.when(
            ChangeProductPrice(product_id=product_id, price="9", expected_version=1)
        )
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert await scenario.new_events() == []
