"""A toy counter service on cqrskit's public API only, to exercise cqrskit.fastapi."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

from cqrskit import (
    START,
    Aggregate,
    AggregateNotFound,
    Command,
    CommandBus,
    ConcurrencyError,
    DomainError,
    DomainEvent,
    EventRegistry,
    IdempotencyMiddleware,
    Projection,
    ProjectionRunner,
    Query,
    QueryBus,
    RecordedEvent,
    Repository,
    RetryOnConflict,
    UnitOfWork,
)
from cqrskit.fastapi import (
    COMMAND_RESPONSES,
    QUERY_RESPONSES,
    CommandBusDep,
    CqrsServices,
    QueryBusDep,
    ReadConsistency,
    ServicesDep,
    command_metadata,
    command_response,
    command_responses,
    cqrs_lifespan,
    etag,
    if_match_version,
    install_health,
    install_metrics,
    install_problem_handlers,
    read_your_writes,
)
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork, open_sql_read_store
from cqrskit.store import MemoryEventStore

# -- domain -------------------------------------------------------------------------------


class CounterCreated(DomainEvent):
    name: str


class CounterIncremented(DomainEvent):
    by: int


class StepTooLarge(DomainError):
    """Mapped to 422 by the service (more specific than DomainError's 409)."""


class Counter(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.value = 0

    @classmethod
    def create(cls, id: str, name: str) -> Counter:
        counter = cls(id)
        counter.record(CounterCreated(name=name))
        return counter

    def increment(self, by: int) -> None:
        if by > 100:
            raise StepTooLarge(f"a step of {by} is larger than 100")
        if self.value + by > 1000:
            raise DomainError(f"counter {self.id} would pass 1000")
        self.record(CounterIncremented(by=by))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case CounterCreated():
                pass
            case CounterIncremented(by=by):
                self.value += by
            case _:
                super().apply(event)


# -- application ----------------------------------------------------------------------


class CreateCounter(Command):
    name: str


class Increment(Command):
    counter_id: str
    by: int
    expected_version: int | None = None


class Clash(Command):
    """Always conflicts: shows what the client gets once the retries gave up."""


class CounterView(BaseModel):
    id: str
    name: str
    value: int
    version: int


class GetCounter(Query[CounterView]):
    counter_id: str


async def create_counter(command: CreateCounter, uow: UnitOfWork) -> str:
    # The new id derives from the command id, so a replayed request names the same counter.
    counter_id = command.metadata.message_id.hex[:12]
    uow.add(Counter.create(counter_id, command.name))
    return counter_id


async def increment(command: Increment, uow: UnitOfWork) -> str:
    counter = await uow.load(Counter, command.counter_id, expected_version=command.expected_version)
    counter.increment(command.by)
    return counter.id


async def clash(command: Clash, uow: UnitOfWork) -> str:
    raise ConcurrencyError("Counter-x", 1, 2)


class Counters(Projection[SqlUnitOfWork]):
    name = "counters"
    handles = (CounterCreated, CounterIncremented)
    tables = ("counters",)

    async def setup(self, uow: SqlUnitOfWork) -> None:
        await uow.execute(
            "CREATE TABLE {counters} "
            "(id TEXT PRIMARY KEY, name TEXT, value INTEGER, version INTEGER)"
        )

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        for recorded in events:
            counter_id = recorded.stream_id.removeprefix("Counter-")
            match recorded.event:
                case CounterCreated(name=name):
                    await uow.execute(
                        "INSERT INTO {counters} VALUES (?, ?, 0, ?) ON CONFLICT (id) DO NOTHING",
                        counter_id,
                        name,
                        recorded.version,
                    )
                case CounterIncremented(by=by):
                    await uow.execute(
                        "UPDATE {counters} SET value = value + ?, version = ? "
                        "WHERE id = ? AND version < ?",
                        by,
                        recorded.version,
                        counter_id,
                        recorded.version,
                    )


def get_counter_handler(read_store: SqlReadStore) -> Any:
    async def get_counter(query: GetCounter) -> CounterView:
        row = await read_store.fetchone(
            "counters", "SELECT * FROM {counters} WHERE id = ?", query.counter_id
        )
        if row is None:
            raise AggregateNotFound("Counter", query.counter_id)
        return CounterView(**dict(row))

    return get_counter


# -- HTTP -------------------------------------------------------------------------------


class NewCounter(BaseModel):
    name: str = Field(min_length=1)


class Step(BaseModel):
    by: int = Field(gt=0)


class Created(BaseModel):
    id: str


def current_user(request: Request) -> str:
    user = request.headers.get("X-User")
    if user is None:
        raise HTTPException(401, "sign in first", headers={"WWW-Authenticate": "Bearer"})
    return user


UserDep = Annotated[str, Depends(current_user)]


@dataclass
class Toy:
    """The app and what tests look at behind it."""

    app: FastAPI
    store: MemoryEventStore
    registry: CollectorRegistry
    services: list[CqrsServices] = field(default_factory=list)


def build(tmp_path: Path, consistency_timeout: float = 2.0) -> Toy:
    store = MemoryEventStore(EventRegistry([CounterCreated, CounterIncremented]))
    registry = CollectorRegistry()
    toy: Toy

    @asynccontextmanager
    async def open_services() -> AsyncIterator[CqrsServices]:
        read_store = await open_sql_read_store(f"sqlite:///{tmp_path}/read.db?poll_interval=5")
        commands = CommandBus(
            Repository(store),
            [IdempotencyMiddleware(store), RetryOnConflict(attempts=2, base_delay=0.0001)],
        )
        commands.register(CreateCounter, create_counter)
        commands.register(Increment, increment)
        commands.register(Clash, clash)
        queries = QueryBus()
        queries.register(GetCounter, get_counter_handler(read_store))
        runner = ProjectionRunner(store, registry=registry)
        runner.add(Counters(), read_store)
        try:
            async with runner:
                # Serve once the read model's tables exist: queries then never race setup.
                (await runner.wait_for("counters", START, timeout=5.0)).raise_if_timed_out()
                services = CqrsServices(
                    command_bus=commands,
                    query_bus=queries,
                    default_waiter=read_store,
                    runner=runner,
                    consistency_timeout=consistency_timeout,
                )
                toy.services.append(services)
                yield services
        finally:
            await read_store.close()
            await store.close()

    app = FastAPI(lifespan=cqrs_lifespan(open_services))
    install_problem_handlers(app, {StepTooLarge: 422})
    install_metrics(app, registry)
    install_health(app)
    toy = Toy(app, store, registry)

    @app.post("/counters", status_code=201, response_model=Created, responses=COMMAND_RESPONSES)
    async def create(
        body: NewCounter, request: Request, bus: CommandBusDep, user: UserDep
    ) -> Response:
        command = CreateCounter(name=body.name, metadata=command_metadata(request, user, user))
        result = await bus.send(command)
        return command_response(
            result, Created(id=result.aggregate_id), 201, f"/counters/{result.aggregate_id}"
        )

    @app.post(
        "/counters/{counter_id}/increments",
        response_model=Created,
        responses=command_responses(200),
    )
    async def step(
        counter_id: str,
        body: Step,
        request: Request,
        bus: CommandBusDep,
        user: UserDep,
        expected: Annotated[int | None, Depends(if_match_version)],
    ) -> Response:
        command = Increment(
            counter_id=counter_id,
            by=body.by,
            expected_version=expected,
            metadata=command_metadata(request, user, user),
        )
        result = await bus.send(command)
        return command_response(result, {"id": result.aggregate_id}, 200)

    @app.post("/clash")
    async def conflict(bus: CommandBusDep) -> Response:
        result = await bus.send(Clash())
        return command_response(result, {})

    @app.get(
        "/counters/{counter_id}",
        response_model=CounterView,
        responses=QUERY_RESPONSES,
        dependencies=[Depends(read_your_writes("counters"))],
    )
    async def read(counter_id: str, response: Response, bus: QueryBusDep) -> CounterView:
        view = await bus.ask(GetCounter(counter_id=counter_id))
        response.headers["ETag"] = etag(view.version)
        return view

    @app.get("/frozen")
    async def frozen(
        consistency: Annotated[
            ReadConsistency, Depends(read_your_writes("counters", "never_runs", timeout=0.05))
        ],
    ) -> dict[str, bool]:
        return {"stale": consistency.stale}

    @app.get("/frozen/{status}")
    async def frozen_failure(
        status: int,
        consistency: Annotated[
            ReadConsistency, Depends(read_your_writes("never_runs", timeout=0.05))
        ],
    ) -> None:
        """Fails as asked after a wait that (with a token) never succeeds."""
        if status == 503:
            raise ConnectionRefusedError("the read model's server is down")
        if status == 409:
            raise DomainError("the read model says no")
        raise HTTPException(status, f"failed with {status}")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/down")
    async def down() -> None:
        raise ConnectionRefusedError("connect to 10.0.0.5:5432 failed")

    @app.post("/closed")
    async def closed(services: ServicesDep) -> Response:
        await store.close()
        result = await services.command_bus.send(CreateCounter(name="late"))
        return command_response(result, {})

    return toy
