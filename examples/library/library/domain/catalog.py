"""The catalog: titles, and the physical copies of each that can be lent."""

from __future__ import annotations

from cqrskit import Aggregate, DomainError, DomainEvent
from library.domain.errors import CopyUnavailable
from library.domain.events import CopyAdded, CopyLent, CopyReturned, TitleCatalogued

__all__ = ["Copy", "Title"]


class Title(Aggregate):
    """A book in the catalog, identified by its ISBN."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.author = ""

    @classmethod
    def catalogue(cls, isbn: str, name: str, author: str) -> Title:
        """A new title."""
        title = cls(isbn)
        title.record(TitleCatalogued(title_id=isbn, name=name, author=author))
        return title

    def apply(self, event: DomainEvent) -> None:
        match event:
            case TitleCatalogued(name=name, author=author):
                self.name, self.author = name, author
            case _:
                super().apply(event)


class Copy(Aggregate):
    """One physical copy, known by its barcode: on the shelf, or out on one loan."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.title_id = ""
        self.loan_id: str | None = None

    @classmethod
    def add(cls, barcode: str, title_id: str) -> Copy:
        """A new copy of ``title_id`` on the shelf."""
        copy = cls(barcode)
        copy.record(CopyAdded(copy_id=barcode, title_id=title_id))
        return copy

    def lend(self, loan_id: str) -> None:
        """Take the copy off the shelf for ``loan_id``; refused while it is out."""
        if self.loan_id is not None:
            raise CopyUnavailable(self.id, self.loan_id)
        self.record(CopyLent(copy_id=self.id, title_id=self.title_id, loan_id=loan_id))

    def take_back(self) -> str:
        """Put the copy back on the shelf; the id of the loan that ends."""
        if self.loan_id is None:
            raise DomainError(f"copy {self.id!r} is not on loan")
        loan_id = self.loan_id
        self.record(CopyReturned(copy_id=self.id, title_id=self.title_id, loan_id=loan_id))
        return loan_id

    def apply(self, event: DomainEvent) -> None:
        match event:
            case CopyAdded(title_id=title_id):
                self.title_id = title_id
            case CopyLent(loan_id=loan_id):
                self.loan_id = loan_id
            case CopyReturned():
                self.loan_id = None
            case _:
                super().apply(event)
