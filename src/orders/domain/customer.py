"""Customers, and the reservation that keeps each e-mail address to one customer."""

from __future__ import annotations

from uuid import UUID

from cqrskit.aggregate import Aggregate
from cqrskit.messages import DomainEvent
from orders.domain.errors import EmailTaken
from orders.domain.events import CustomerRegistered, EmailClaimed
from orders.domain.values import normalize_email

__all__ = ["Customer", "EmailReservation"]


class Customer(Aggregate):
    """Someone who places orders."""

    category = "Customer"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.email = ""

    @classmethod
    def register(cls, customer_id: UUID, name: str, email: str) -> Customer:
        """A new customer. The e-mail address must be claimed in the same append, through
        :class:`EmailReservation`, for it to stay unique."""
        customer = cls(str(customer_id))
        customer.record(CustomerRegistered(customer_id=customer_id, name=name, email=email))
        return customer

    def apply(self, event: DomainEvent) -> None:
        match event:
            case CustomerRegistered(name=name, email=email):
                self.name = name
                self.email = email
            case _:
                super().apply(event)


class EmailReservation(Aggregate):
    """One stream per normalized e-mail address; its first event is the only claim.

    Uniqueness is enforced by the event store, not by a read model: two customers claiming
    the same address both expect the reservation stream not to exist, so the second
    append fails with a concurrency conflict and, retried, sees the claim and is refused.
    """

    category = "CustomerEmail"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.customer_id: UUID | None = None

    @classmethod
    def id_for(cls, email: str) -> str:
        """The reservation id of ``email``: its normalized form."""
        return normalize_email(email)

    def claim(self, customer_id: UUID) -> None:
        """Give the address to ``customer_id``; :class:`EmailTaken` if it is already taken."""
        if self.customer_id is not None:
            raise EmailTaken(self.id)
        self.record(EmailClaimed(email=self.id, customer_id=customer_id))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case EmailClaimed(customer_id=customer_id):
                self.customer_id = customer_id
            case _:
                super().apply(event)
