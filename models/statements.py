"""Hot reads as statements written once per process and dialect, not built by the ORM each time.

Why (issue 15): a Tortoise query costs ~400 µs of CPU on PostgreSQL, three quarters of it
building the SQL (Q objects, pypika, the parameter list) that is the same text every time;
sent as a fixed statement it costs ~130 µs (bench/README.md). The paths a paid order takes
read the same few rows many times per second, so those reads are declared here once and
still come back as the models' own instances (``Model._init_from_db``, as Tortoise builds
them: every column, converted by the fields), so nothing downstream can tell the difference.

Only what reads like a declaration goes here: ``Select`` (every column of one table, equality
on named columns, an optional order and limit), ``Update`` (plain values set where named
columns are equal, as a state machine's conditional update; ``run_then_insert`` adds the event
that records it), ``Insert`` (many rows in one statement, their ids set; ``run_with`` a new
row and the one that records it; ``insert_together`` for several tables at once, with
``Increment``'s counters) and ``InsertNew`` (rows inserted unless a unique key already holds
them, the new ones returned). Anything else stays on the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from tortoise.models import Model

M = TypeVar("M", bound=Model)


def placeholders(dialect: str, count: int, start: int = 1) -> list[str]:
    """The parameter marks of a statement: ``$1, $2...`` on PostgreSQL, ``?`` on SQLite."""
    return [f"${start + i}" for i in range(count)] if dialect == "postgres" else ["?"] * count


class Select(Generic[M]):
    """``SELECT <every column> FROM <table> WHERE a = ? AND b = ? [ORDER BY ...] [LIMIT n]``.

    ``where`` names model fields (or their columns, ``buyer_id``); values are passed in the
    same order and converted by those fields (enums, UUIDs, datetimes) as the ORM would.
    ``order_by`` is a field name, ``-`` first for descending. ``related`` names one foreign
    key whose row comes with it (LEFT JOIN), set on the instance as ``select_related`` does.
    """

    def __init__(self, model: type[M], *where: str, order_by: str | None = None, limit: int | None = None,
                 related: str | None = None) -> None:
        self.model = model
        self._names = where
        self._order_by = order_by
        self._limit = f" LIMIT {int(limit)}" if limit is not None else ""
        self._related = related
        self._fields: list[Any] | None = None
        self._keys: tuple[list[str], list[str]] = ([], [])
        self._sql: dict[str, str] = {}

    def _resolve(self) -> list[Any]:
        # At first use, not at import: Tortoise adds the foreign keys' columns (``order_id``)
        # to a model's fields when it initialises.
        if self._fields is None:
            meta = self.model._meta
            related = self._related_model()
            self._keys = (list(meta.fields_db_projection.values()),
                          list(related._meta.fields_db_projection.values()) if related is not None else [])
            self._fields = [meta.fields_map[name] for name in self._names]
        return self._fields

    def _related_model(self) -> type[Model] | None:
        return self.model._meta.fields_map[self._related].related_model if self._related else None

    def sql(self, dialect: str) -> str:
        sql = self._sql.get(dialect)
        if sql is None:
            meta = self.model._meta
            self._resolve()
            where = [meta.fields_db_projection[name] for name in self._names]
            marks = placeholders(dialect, len(where))
            condition = " AND ".join(f't."{column}" = {mark}' for column, mark in zip(where, marks, strict=True))
            order = ""
            if self._order_by is not None:
                column = meta.fields_db_projection[self._order_by.lstrip("-")]
                order = f' ORDER BY t."{column}"' + (" DESC" if self._order_by.startswith("-") else "")
            columns = ", ".join([f't."{column}"' for column in self._keys[0]] + [f'r."{column}"' for column in self._keys[1]])
            source = f'"{meta.db_table}" t'
            related = self._related_model()
            if self._related is not None and related is not None:
                key = meta.fields_map[self._related].source_field or f"{self._related}_id"
                source += (f' LEFT JOIN "{related._meta.db_table}" r '
                           f'ON r."{related._meta.db_pk_column}" = t."{meta.fields_db_projection[key]}"')
            sql = self._sql[dialect] = (
                f"SELECT {columns} FROM {source}" + (f" WHERE {condition}" if condition else "") + order + self._limit
            )
        return sql

    async def all(self, *values: Any) -> list[M]:
        fields = self._resolve()
        if len(values) != len(fields):
            raise TypeError(f"{len(fields)} values expected, {len(values)} given")
        connection = self.model._meta.db  # the task's transaction, if it is in one, as for the ORM
        params = [field.to_db_value(value, None) for field, value in zip(fields, values, strict=True)]
        _, rows = await connection.execute_query(self.sql(connection.capabilities.dialect), params)
        own, joined = self._keys
        related = self._related_model()
        found = []
        for row in rows:
            cells = tuple(row)
            instance = self.model._init_from_db(**dict(zip(own, cells[: len(own)], strict=True)))
            if related is not None:
                theirs = cells[len(own):]
                # No related row (a LEFT JOIN's nulls): None, as select_related leaves it.
                other = related._init_from_db(**dict(zip(joined, theirs, strict=True))) if any(
                    value is not None for value in theirs) else None
                object.__setattr__(instance, f"_{self._related}", other)
            found.append(instance)
        return found

    async def first(self, *values: Any) -> M | None:
        found = await self.all(*values)
        return found[0] if found else None


class Update(Generic[M]):
    """``UPDATE <table> SET a = ?, b = ? WHERE x = ? AND y = ?``, written once per dialect and
    set of changed fields; returns the rows changed. For the conditional updates a state
    machine makes (``WHERE id = ? AND status = ?``): plain values only, no expressions."""

    def __init__(self, model: type[M], *where: str) -> None:
        self.model = model
        self._names = where
        self._sql: dict[tuple[str, tuple[str, ...]], str] = {}
        self._then: dict[tuple[str, tuple[str, ...], str], str] = {}

    def sql(self, dialect: str, changed: tuple[str, ...]) -> str:
        key = (dialect, changed)
        sql = self._sql.get(key)
        if sql is None:
            projection = self.model._meta.fields_db_projection
            count = len(changed) + len(self._names)
            marks = iter(placeholders(dialect, count))
            changes = ", ".join(f'"{projection[name]}" = {next(marks)}' for name in changed)
            condition = " AND ".join(f'"{projection[name]}" = {next(marks)}' for name in self._names)
            sql = self._sql[key] = f'UPDATE "{self.model._meta.db_table}" SET {changes} WHERE {condition}'
        return sql

    def _params(self, changes: dict[str, Any], values: tuple[Any, ...]) -> list[Any]:
        if len(values) != len(self._names) or not changes:
            raise TypeError(f"{len(self._names)} values and at least one change expected")
        fields = self.model._meta.fields_map
        params = [fields[name].to_db_value(value, None) for name, value in changes.items()]
        return params + [fields[name].to_db_value(value, None) for name, value in zip(self._names, values, strict=True)]

    async def run(self, changes: dict[str, Any], *values: Any) -> int:
        params = self._params(changes, values)
        connection = self.model._meta.db
        updated, _ = await connection.execute_query(self.sql(connection.capabilities.dialect, tuple(changes)), params)
        return updated

    async def run_then_insert(self, changes: dict[str, Any], *values: Any, then: Insert[Any], row: Model) -> bool:
        """``run`` for one row (``where`` names a unique one) and, if it changed, ``row``
        inserted with ``then``: a state machine's conditional move and the event that records
        it. On PostgreSQL one round trip, ``WITH moved AS (UPDATE ... RETURNING 1) INSERT ...
        SELECT ... FROM moved RETURNING id``: no row inserted, no row returned, if the update
        found nothing. Elsewhere the two statements. True if it changed (and ``row`` has its id)."""
        connection = self.model._meta.db
        dialect = connection.capabilities.dialect
        if dialect != "postgres":
            if await self.run(changes, *values) != 1:
                return False
            await then.run([row])
            return True
        changed = tuple(changes)
        params = self._params(changes, values)
        key = (dialect, changed, then.model._meta.db_table)
        sql = self._then.get(key)
        if sql is None:
            sql = self._then[key] = (f"WITH moved AS ({self.sql(dialect, changed)} RETURNING 1) "
                                     + then.sql_from(dialect, "moved", start=len(params) + 1))
        made = await connection.execute_query_dict(sql, params + then._params([row]))
        if not made:
            return False
        Insert._saved([row], [made[0][then.model._meta.db_pk_column]])
        return True


class _Inserting(Generic[M]):
    """What ``Insert`` and ``InsertNew`` share: the columns the ORM writes (all but a generated
    key), one statement text per dialect and row count, and the values converted as the ORM
    converts them (``auto_now_add`` filled on the instance, enums and JSON encoded)."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self._sql: dict[tuple[str, int], str] = {}
        self._names: list[str] | None = None

    def _fields(self) -> list[str]:
        if self._names is None:  # at first use: the foreign keys' columns exist once Tortoise has initialised
            meta = self.model._meta
            self._names = [name for name in meta.fields_db_projection if not (name == meta.pk_attr and meta.pk.generated)]
        return self._names

    def _columns(self) -> str:
        projection = self.model._meta.fields_db_projection
        return ", ".join(f'"{projection[name]}"' for name in self._fields())

    def sql(self, dialect: str, rows: int, start: int = 1) -> str:
        """The statement for ``rows`` rows, its marks numbered from ``start`` (PostgreSQL)."""
        sql = self._sql.get((dialect, rows, start))
        if sql is None:
            names = self._fields()
            marks = iter(placeholders(dialect, len(names) * rows, start))
            values = ", ".join("(" + ", ".join(next(marks) for _ in names) + ")" for _ in range(rows))
            sql = f'INSERT INTO "{self.model._meta.db_table}" ({self._columns()}) VALUES {values} {self._tail()}'
            self._sql[(dialect, rows, start)] = sql
        return sql

    def _tail(self) -> str:
        """What follows the VALUES (at first use, as the columns)."""
        raise NotImplementedError

    def _params(self, instances: list[M], skip: str | None = None) -> list[Any]:
        fields = self.model._meta.fields_map
        return [fields[name].to_db_value(getattr(row, name), row)
                for row in instances for name in self._fields() if name != skip]

    async def _send(self, instances: list[M]) -> list[dict[str, Any]]:
        params = self._params(instances)
        connection = self.model._meta.db  # the task's transaction, if it is in one
        # The dict form: the plain one sends an INSERT without fetching what it returns.
        return await connection.execute_query_dict(self.sql(connection.capabilities.dialect, len(instances)), params)


class Insert(_Inserting[M]):
    """``INSERT INTO <table> (...) VALUES (...), (...), ... RETURNING <id>``: unsaved instances
    written in one statement per ``BATCH`` rows instead of one each, their ids set in order
    (for rows a transaction collects and writes together: the outbox's, at commit)."""

    BATCH = 200  # rows per statement: 5-10 columns each stays far below either driver's limit

    def __init__(self, model: type[M]) -> None:
        super().__init__(model)
        self._with: dict[tuple[str, str], str] = {}  # run_with's, by (child's table, link)

    def _tail(self) -> str:
        return f'RETURNING "{self.model._meta.db_pk_column}"'

    def sql_from(self, dialect: str, source: str, start: int = 1, link: tuple[str, str] | None = None) -> str:
        """``INSERT INTO <table> (...) SELECT <one row's values> FROM <source> RETURNING <id>``:
        one row per row of ``source`` (a WITH's name). Each mark is cast to its column's type,
        which PostgreSQL cannot infer for a SELECT's output as it does for VALUES. ``link``: a
        field whose value is an expression over ``source`` (its new id) rather than a mark,
        returned too."""
        meta = self.model._meta
        linked, expression = link if link is not None else (None, "")
        marks = iter(placeholders(dialect, len(self._fields()), start))
        values = ", ".join(expression if name == linked else
                           f"CAST({next(marks)} AS {meta.fields_map[name].get_for_dialect(dialect, 'SQL_TYPE')})"
                           for name in self._fields())
        tail = self._tail() + (f', "{meta.fields_db_projection[linked]}"' if linked is not None else "")
        return f'INSERT INTO "{meta.db_table}" ({self._columns()}) SELECT {values} FROM {source} {tail}'

    async def run_with(self, row: M, *, then: Insert[Any], child: Model, link: str) -> None:
        """``row`` inserted and ``child`` with it, ``child``'s field ``link`` naming the new row:
        a new order and the event that records its creation. On PostgreSQL one round trip,
        ``WITH made AS (INSERT ... RETURNING id) INSERT ... SELECT ..., made.id FROM made``;
        elsewhere the two statements. Both get their ids (and ``child`` its link)."""
        connection = self.model._meta.db  # the task's transaction, if it is in one
        dialect = connection.capabilities.dialect
        if dialect != "postgres":
            await self.run([row])
            setattr(child, link, row.pk)
            await then.run([child])
            return
        params = self._params([row])
        key = (then.model._meta.db_table, link)
        sql = self._with.get(key)
        if sql is None:
            made = f'made."{self.model._meta.db_pk_column}"'
            sql = self._with[key] = (f"WITH made AS ({self.sql(dialect, 1)}) "
                                     + then.sql_from(dialect, "made", start=len(params) + 1, link=(link, made)))
        made = (await connection.execute_query_dict(sql, params + then._params([child], skip=link)))[0]
        column = then.model._meta.fields_db_projection[link]
        self._saved([row], [made[column]])
        setattr(child, link, made[column])
        self._saved([child], [made[then.model._meta.db_pk_column]])

    async def run(self, instances: list[M]) -> None:
        pk = self.model._meta.db_pk_column
        for start in range(0, len(instances), self.BATCH):
            batch = instances[start:start + self.BATCH]
            self._saved(batch, [row[pk] for row in await self._send(batch)])

    @staticmethod
    def _saved(batch: list[M], keys: list[Any]) -> None:
        # One statement takes its ids from the sequence row by row, in the order written.
        for instance, key in zip(batch, sorted(keys), strict=True):
            instance.pk = key
            instance._saved_in_db = True


class Increment(Generic[M]):
    """``UPDATE <table> SET <column> = <column> + ? WHERE <key> = ?``: a counter moved by an
    amount (a product's units sold), sent with a transaction's rows at commit by
    ``insert_together``, so that the row's lock is taken by the last statement before the
    COMMIT rather than held across the rest of the transaction."""

    def __init__(self, model: type[M], column: str) -> None:
        self.model = model
        self.column = column

    def sql(self, dialect: str, start: int = 1) -> str:
        meta = self.model._meta
        amount, key = placeholders(dialect, 2, start)
        column = meta.fields_db_projection[self.column]
        return f'UPDATE "{meta.db_table}" SET "{column}" = "{column}" + {amount} WHERE "{meta.db_pk_column}" = {key}'

    async def run(self, key: Any, amount: int) -> None:
        connection = self.model._meta.db  # the task's transaction, if it is in one
        await connection.execute_query(self.sql(connection.capabilities.dialect), [amount, key])


_TOGETHER: dict[tuple[tuple[str, int], ...], str] = {}


async def insert_together(*writes: tuple[Insert[Any], list[Any]],
                          adding: Iterable[tuple[Increment[Any], Any, int]] = ()) -> None:
    """Rows of several tables, as ``Insert.run`` writes each, in one round trip on PostgreSQL:
    ``WITH w0 AS (INSERT ... RETURNING id), w1 AS (...) SELECT 0, id FROM w0 UNION ALL ...``
    (every data-modifying WITH runs exactly once). It is how a transaction's outbox entries
    and trade-log events are written at commit: one statement, not one per table, on every
    order. ``adding``: counters moved in the same statement (``Increment``, the row's key, the
    amount; summed per row, in key order so that concurrent commits lock alike). Elsewhere
    (SQLite has no INSERT inside WITH), or beyond one ``BATCH`` per table, one ``run`` per
    table, then one per counter."""
    writes = tuple((insert, rows) for insert, rows in writes if rows)
    sums: dict[tuple[Increment[Any], Any], int] = {}
    for increment, key, amount in adding:
        sums[(increment, key)] = sums.get((increment, key), 0) + amount
    moves = sorted(((increment, key, amount) for (increment, key), amount in sums.items() if amount),
                   key=lambda move: (move[0].model._meta.db_table, move[0].column, move[1]))
    if not writes and not moves:
        return
    model = writes[0][0].model if writes else moves[0][0].model
    connection = model._meta.db  # the task's transaction, if it is in one
    dialect = connection.capabilities.dialect
    if (dialect != "postgres" or not writes or len(writes) + len(moves) == 1
            or any(len(rows) > Insert.BATCH for _, rows in writes)):
        for insert, rows in writes:
            await insert.run(rows)
        for increment, key, amount in moves:
            await increment.run(key, amount)
        return
    shape = (tuple((insert.model._meta.db_table, len(rows)) for insert, rows in writes)
             + tuple((f"{increment.model._meta.db_table}.{increment.column}", -1) for increment, _, _ in moves))
    sql = _TOGETHER.get(shape)
    if sql is None:
        parts, selects, start = [], [], 1
        for part, (insert, rows) in enumerate(writes):
            parts.append(f"w{part} AS ({insert.sql(dialect, len(rows), start)})")
            selects.append(f'SELECT {part} AS part, "{insert.model._meta.db_pk_column}" AS key FROM w{part}')
            start += len(insert._fields()) * len(rows)
        for part, (increment, _, _) in enumerate(moves):
            parts.append(f"a{part} AS ({increment.sql(dialect, start)})")  # no RETURNING: run, never read
            start += 2
        sql = _TOGETHER[shape] = "WITH " + ", ".join(parts) + " " + " UNION ALL ".join(selects)
    params = [value for insert, rows in writes for value in insert._params(rows)]
    params += [value for _, key, amount in moves for value in (amount, key)]
    keys: list[list[Any]] = [[] for _ in writes]
    for row in await connection.execute_query_dict(sql, params):
        keys[row["part"]].append(row["key"])
    for (_, rows), made in zip(writes, keys, strict=True):
        Insert._saved(rows, made)


class InsertNew(_Inserting[M]):
    """``INSERT INTO <table> (...) VALUES (...), ... ON CONFLICT DO NOTHING RETURNING <every column>``.

    The rows that were new come back as instances; a row whose unique key is already taken
    (by a committed row, or by a concurrent transaction once it commits) does not. It is how
    an idempotent write learns "first time or replay" in one statement, with no savepoint to
    set and release around a failing INSERT (two more round trips each time).
    """

    def _tail(self) -> str:
        return "ON CONFLICT DO NOTHING RETURNING " + ", ".join(
            f'"{column}"' for column in self.model._meta.fields_db_projection.values())

    async def run(self, instances: list[M]) -> list[M]:
        if not instances:
            return []
        return [self.model._init_from_db(**row) for row in await self._send(instances)]
