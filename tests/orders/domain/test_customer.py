"""Customer and EmailReservation: registration, and one customer per e-mail address."""

from uuid import uuid4

from cqrskit.testing import AggregateScenario
from orders.domain import (
    Customer,
    CustomerRegistered,
    EmailClaimed,
    EmailReservation,
    EmailTaken,
)

ADA = uuid4()
BOB = uuid4()


def test_register_records_the_customer() -> None:
    customer = Customer.register(ADA, "Ada", "ada@example.com")
    assert (customer.id, customer.stream_id) == (str(ADA), f"Customer-{ADA}")
    assert (customer.name, customer.email) == ("Ada", "ada@example.com")
    [event] = customer.collect_events()
    assert event == CustomerRegistered(
        customer_id=ADA, name="Ada", email="ada@example.com", metadata=event.metadata
    )


def test_a_registered_customer_is_rebuilt_from_its_stream() -> None:
    customer = Customer.from_events(
        str(ADA), [CustomerRegistered(customer_id=ADA, name="Ada", email="ada@example.com")]
    )
    assert (customer.name, customer.email, customer.version) == ("Ada", "ada@example.com", 1)


def test_the_reservation_id_is_the_normalized_address() -> None:
    assert EmailReservation.id_for("  Ada@Example.COM ") == "ada@example.com"
    assert EmailReservation.stream_id_for("ada@example.com") == "CustomerEmail-ada@example.com"


def test_a_free_address_is_claimed() -> None:
    AggregateScenario(EmailReservation, "ada@example.com").when(
        lambda reservation: reservation.claim(ADA)
    ).then(EmailClaimed(email="ada@example.com", customer_id=ADA))


def test_a_claimed_address_is_refused() -> None:
    AggregateScenario(EmailReservation, "ada@example.com").given(
        EmailClaimed(email="ada@example.com", customer_id=ADA)
    ).when(lambda reservation: reservation.claim(BOB)).then_raises(
        EmailTaken, match="ada@example.com"
    )


def test_even_the_owner_cannot_claim_twice() -> None:
    AggregateScenario(EmailReservation, "ada@example.com").given(
        EmailClaimed(email="ada@example.com", customer_id=ADA)
    ).when(lambda reservation: reservation.claim(ADA)).then_raises(EmailTaken)
