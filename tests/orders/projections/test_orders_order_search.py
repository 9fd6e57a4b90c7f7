"""The order-search read model, the same tests on SQLite (FTS5) and PostgreSQL (tsvector)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from orders_projection_support import Shop, Stores, project
from pydantic import ValidationError

from cqrskit.readstore import SqlReadStore
from cqrskit.store.memory import MemoryEventStore
from orders.application.views import OrderSearchReader, SearchCriteria, SortField, SortOrder
from orders.domain.values import OrderStatus
from orders.projections import OrderSearchProjection, SqlOrderSearchReader


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Catalogue:
    """The orders every search test looks through."""

    ada: UUID
    bob: UUID
    chloe: UUID
    orders: dict[str, UUID]


@pytest.fixture
async def store(stores: Stores) -> SqlReadStore:
    store: SqlReadStore = await stores.open()
    return store


@pytest.fixture
async def reader(store: SqlReadStore) -> OrderSearchReader:
    return SqlOrderSearchReader(store)


@pytest.fixture
async def catalogue(shop: Shop, events: MemoryEventStore, store: SqlReadStore) -> Catalogue:
    ada = await shop.customer("Ada Lovelace", "ada.lovelace@example.com")
    bob = await shop.customer("Bob O'Brien", "bob@obrien.ie")
    chloe = await shop.customer("Chloé Zoë Müller", "chloe@beispiel.de")
    pen = await shop.product("PEN-100", "Fountain Pen", "19.99")
    ink = await shop.product("INK-BLUE", "Quink Ink", "4.50")
    pad = await shop.product("PAD_A4", "Notebook 100% recycled", "3.00")
    orders = {
        "ada_pen": await shop.place(ada, pen.line(1), city="London"),
        "ada_ink": await shop.place(ada, ink.line(4), city="Cambridge"),
        "bob_pad": await shop.place(bob, pad.line(10), city="Dublin"),
        "bob_pen": await shop.place(bob, pen.line(2), ink.line(1), city="Cork"),
        "chloe_pad": await shop.place(chloe, pad.line(1), city="München"),
    }
    await shop.add_item(orders["ada_ink"], pad.line(2))
    await shop.ship(orders["ada_pen"])
    await shop.cancel(orders["bob_pad"], pad.line(10))
    await project(events, store, OrderSearchProjection(), batch_size=4)
    return Catalogue(ada, bob, chloe, orders)


async def found(reader: OrderSearchReader, **criteria: object) -> list[UUID]:
    page = await reader.search(SearchCriteria.model_validate({"page_size": 50, **criteria}))
    assert page.total == len(page.items)
    return [hit.order_id for hit in page.items]


def named(catalogue: Catalogue, *names: str) -> set[UUID]:
    return {catalogue.orders[n] for n in names}


class TestOrderSearch:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Lovelace", ("ada_pen", "ada_ink")),
            ("ada lovelace", ("ada_pen", "ada_ink")),
            ("ADA.LOVELACE@EXAMPLE.COM", ("ada_pen", "ada_ink")),
            ("obrien.ie", ("bob_pad", "bob_pen")),
            ("O'Brien", ("bob_pad", "bob_pen")),
            ("fountain", ("ada_pen", "bob_pen")),
            ("quink", ("ada_ink", "bob_pen")),
            ("notebook", ("ada_ink", "bob_pad", "chloe_pad")),
            ("pen-100", ("ada_pen", "bob_pen")),
            ("ink-blue", ("ada_ink", "bob_pen")),
            ("pad_a4", ("ada_ink", "bob_pad", "chloe_pad")),
            ("dublin", ("bob_pad",)),
            ("münchen", ("chloe_pad",)),
            ("MUNCHEN", ("chloe_pad",)),
            ("chloe zoe", ("chloe_pad",)),
            ("lov foun", ("ada_pen",)),
            ("bob cork", ("bob_pen",)),
            ("camb", ("ada_ink",)),
            ("100%", ("ada_pen", "bob_pen", "ada_ink", "bob_pad", "chloe_pad")),
            ("nobody", ()),
            ("lovelace dublin", ()),
        ],
    )
    async def test_words_match_as_prefixes_all_required(
        self, reader: OrderSearchReader, catalogue: Catalogue, text: str, expected: tuple[str, ...]
    ) -> None:
        assert set(await found(reader, text=text)) == named(catalogue, *expected)

    async def test_an_order_id_finds_that_order(
        self, reader: OrderSearchReader, catalogue: Catalogue
    ) -> None:
        order_id = catalogue.orders["bob_pen"]
        assert await found(reader, text=str(order_id)) == [order_id]
        assert await found(reader, text=f"order {str(order_id).upper()}!") == []
        assert await found(reader, text=f" {str(order_id).upper()} cork") == [order_id]
        assert await found(reader, text=str(order_id)[:8]) == [order_id]
        assert await found(reader, text=str(uuid.uuid4())) == []

    @pytest.mark.parametrize(
        "text",
        [
            "'; DROP TABLE x; --",
            '"; DROP TABLE order_search__orders_v1; --',
            'lovelace" OR "bob',
            "NEAR(ada bob)",
            "ada NEAR bob",
            "* OR *",
            "body:ada",
            "ada & !bob | chloe",
            "%",
            "_",
            "%%__",
            "\\",
            "'",
            '"',
            "🙂 ☃ ∑",
            "Ω" * 200,
            " ".join(["x"] * 100),
        ],
    )
    async def test_hostile_text_is_only_words(
        self, reader: OrderSearchReader, catalogue: Catalogue, store: SqlReadStore, text: str
    ) -> None:
        hits = await found(reader, text=text)
        # Only letters and digits count; operators mean nothing, so these find no order
        # unless every word of them is in it.
        assert hits == []
        assert len(await found(reader)) == 5  # the tables are all still there

    @pytest.mark.parametrize("text", ["\x00", "ada\x1bbob", "Ω" * 201, "a" * 5000])
    def test_control_characters_and_overlong_text_never_reach_the_read_model(
        self, text: str
    ) -> None:
        # Refused where the criteria are made, so no SQL or FTS5 syntax ever sees them.
        with pytest.raises(ValidationError, match="text"):
            SearchCriteria(text=text)

    @pytest.mark.parametrize("text", ["-ada", "ada -lovelace", "^ada", "ada:*", "ada*", "(ada)"])
    async def test_operator_characters_only_separate_words(
        self, reader: OrderSearchReader, catalogue: Catalogue, text: str
    ) -> None:
        assert set(await found(reader, text=text)) == named(catalogue, "ada_pen", "ada_ink")

    async def test_operators_are_plain_words(
        self, reader: OrderSearchReader, catalogue: Catalogue
    ) -> None:
        # "OR" is not an operator: both "lovelace" and "or" would have to match.
        assert await found(reader, text="lovelace OR bob") == []
        # Punctuation between words only separates them.
        assert set(await found(reader, text='"ada" -lovelace*')) == named(
            catalogue, "ada_pen", "ada_ink"
        )
        assert set(await found(reader, text="o'brien; --")) == named(
            catalogue, "bob_pad", "bob_pen"
        )

    async def test_blank_text_filters_nothing(
        self, reader: OrderSearchReader, catalogue: Catalogue
    ) -> None:
        assert len(await found(reader, text="   ")) == 5
        assert len(await found(reader, text=None)) == 5

    async def test_filters(self, reader: OrderSearchReader, catalogue: Catalogue) -> None:
        o = catalogue.orders
        assert set(await found(reader, status=OrderStatus.SHIPPED)) == {o["ada_pen"]}
        assert set(await found(reader, status=OrderStatus.CANCELLED)) == {o["bob_pad"]}
        assert len(await found(reader, status=OrderStatus.PLACED)) == 3
        # Totals: ada_pen 19.99, ada_ink 18.00 + 6.00, bob_pad 30.00, bob_pen 44.48, chloe 3.
        assert set(await found(reader, min_total=Decimal("24.00"))) == named(
            catalogue, "ada_ink", "bob_pad", "bob_pen"
        )
        assert set(await found(reader, min_total=Decimal("24.001"))) == named(
            catalogue, "bob_pad", "bob_pen"
        )
        assert set(await found(reader, max_total=Decimal("19.99"))) == named(
            catalogue, "ada_pen", "chloe_pad"
        )
        assert set(
            await found(reader, min_total=Decimal("19.99"), max_total=Decimal("30"))
        ) == named(catalogue, "ada_pen", "ada_ink", "bob_pad")
        assert set(await found(reader, customer_id=catalogue.bob)) == named(
            catalogue, "bob_pad", "bob_pen"
        )
        assert set(await found(reader, customer_id=catalogue.bob, text="fountain")) == named(
            catalogue, "bob_pen"
        )
        assert await found(reader, customer_id=uuid.uuid4()) == []

    async def test_placed_between(
        self, reader: OrderSearchReader, catalogue: Catalogue, shop: Shop
    ) -> None:
        everything = await reader.search(SearchCriteria(page_size=50, sort_order=SortOrder.ASC))
        times = [hit.placed_at for hit in everything.items]
        assert times == sorted(times)
        between = await found(reader, placed_from=times[1], placed_to=times[3])
        assert between == [h.order_id for h in everything.items[1:4]][::-1]
        after = await found(reader, placed_from=times[3] + timedelta(microseconds=1))
        assert set(after) == {everything.items[4].order_id}

    @pytest.mark.parametrize("field", list(SortField))
    @pytest.mark.parametrize("order", list(SortOrder))
    async def test_sorts_with_the_order_id_breaking_ties(
        self,
        reader: OrderSearchReader,
        catalogue: Catalogue,
        field: SortField,
        order: SortOrder,
    ) -> None:
        page = await reader.search(SearchCriteria(sort_by=field, sort_order=order, page_size=50))
        key = {
            SortField.PLACED_AT: lambda h: (h.placed_at, str(h.order_id)),
            SortField.TOTAL_AMOUNT: lambda h: (h.total_amount, str(h.order_id)),
            SortField.ITEM_COUNT: lambda h: (h.item_count, str(h.order_id)),
        }[field]
        expected = sorted(page.items, key=key, reverse=order is SortOrder.DESC)
        assert page.items == expected
        assert len(page.items) == 5

    async def test_pages(self, reader: OrderSearchReader, catalogue: Catalogue) -> None:
        pages = [
            await reader.search(SearchCriteria(sort_by=SortField.ITEM_COUNT, page=p, page_size=2))
            for p in (1, 2, 3, 4)
        ]
        assert [len(p.items) for p in pages] == [2, 2, 1, 0]
        assert {(p.total, p.total_pages) for p in pages} == {(5, 3)}
        ids = [h.order_id for p in pages for h in p.items]
        assert len(set(ids)) == 5
        # Item counts: bob_pad 10, ada_ink 6, bob_pen 3, then two of 1 (tie on order id).
        assert ids[:3] == [catalogue.orders[n] for n in ("bob_pad", "ada_ink", "bob_pen")]
        with pytest.raises(ValueError, match="page"):
            await reader.search(SearchCriteria(page=0))

    async def test_hit_fields(self, reader: OrderSearchReader, catalogue: Catalogue) -> None:
        [hit] = (await reader.search(SearchCriteria(text="cork"))).items
        assert hit.order_id == catalogue.orders["bob_pen"]
        assert (hit.customer_id, hit.customer_name, hit.customer_email) == (
            catalogue.bob,
            "Bob O'Brien",
            "bob@obrien.ie",
        )
        assert (hit.status, hit.item_count, hit.city) == (OrderStatus.PLACED, 3, "Cork")
        assert hit.total_amount == Decimal("44.48")
        assert str(hit.total_amount) == "44.48"
        assert hit.placed_at.tzinfo is not None


class TestTotals:
    async def test_by_status_alone_or_nothing_they_are_the_kept_counts_and_exact(
        self, store: SqlReadStore, reader: OrderSearchReader, catalogue: Catalogue
    ) -> None:
        kept = await store.query("order_search", "SELECT status, n FROM {totals}")
        counted = await store.query(
            "order_search", "SELECT status, COUNT(*) AS n FROM {orders} GROUP BY status"
        )
        assert {r["status"]: int(r["n"]) for r in kept} == {
            r["status"]: int(r["n"]) for r in counted
        }
        assert {r["status"]: int(r["n"]) for r in kept} == {
            "placed": 3,
            "shipped": 1,
            "cancelled": 1,
        }
        for status, n in (
            (None, 5),
            (OrderStatus.PLACED, 3),
            (OrderStatus.SHIPPED, 1),
            (OrderStatus.CANCELLED, 1),
        ):
            page = await reader.search(SearchCriteria(status=status, page_size=1))
            assert (page.total, page.total_is_exact, page.total_pages) == (n, True, n)

    async def test_other_searches_count_up_to_the_limit_and_say_so(
        self, store: SqlReadStore, catalogue: Catalogue
    ) -> None:
        reader = SqlOrderSearchReader(store, count_limit=2)

        async def total(**criteria: object) -> tuple[int, bool, int]:
            page = await reader.search(SearchCriteria.model_validate(criteria))
            return page.total, page.total_is_exact, len(page.items)

        assert await total(text="notebook") == (2, False, 3)  # 3 matches
        assert await total(text="lovelace") == (2, True, 2)
        assert await total(min_total=Decimal(0)) == (2, False, 5)
        assert await total(placed_from="2000-01-01T00:00:00Z", page_size=1) == (2, False, 1)
        assert await total(status="placed", text="notebook") == (2, True, 2)
        # By status alone, or nothing at all: exact whatever the limit.
        assert await total() == (5, True, 5)
        assert await total(status="placed") == (3, True, 3)
        with pytest.raises(ValueError, match="count_limit"):
            SqlOrderSearchReader(store, count_limit=0)

    async def test_a_live_version_without_kept_counts_is_counted(
        self,
        store: SqlReadStore,
        reader: OrderSearchReader,
        catalogue: Catalogue,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # As while v2 is rebuilt beside a v1 that readers still use (v1 kept no counts).
        tables = await store.live_tables("order_search")
        assert set(tables) == {"customers", "orders", "fts", "totals"}

        async def v1_tables(projection: str) -> dict[str, str]:
            return {k: v for k, v in tables.items() if k != "totals"}

        monkeypatch.setattr(store, "live_tables", v1_tables)
        for status, n in ((None, 5), (OrderStatus.SHIPPED, 1)):
            page = await reader.search(SearchCriteria(status=status))
            assert (page.total, page.total_is_exact) == (n, True)
