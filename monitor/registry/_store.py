"""What the SQL stores of the registry share: sessions, error translation, insert-if-absent.

Each store subclasses :class:`SqlStore`, names its database in ``_label`` (the error messages
read ``"<label> database error (...)"``) and uses one of two session helpers:

* :meth:`SqlStore._session`: a plain session (the caller opens a transaction if it writes);
  every SQLAlchemy error becomes :class:`~monitor.errors.RegistryError`;
* :meth:`SqlStore._tx`: one transaction; a locked or unreachable database (and a pool timeout)
  becomes :class:`~monitor.errors.RegistryUnavailable`, which the workers retry, and other SQL
  errors :class:`~monitor.errors.RegistryError`.

Inserts that must not repeat a row go through :meth:`SqlStore._insert_ignore` (one row) or
:meth:`SqlStore._insert_many_ignore` (one multi-row statement per chunk of rows): both are
``INSERT ... ON CONFLICT DO NOTHING ... RETURNING``, so they tell exactly which rows are new.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlalchemy import Engine, Insert, Row, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import RegistryError, RegistryUnavailable


def _reason(exc: SQLAlchemyError) -> str:
    """A one-line cause, without the SQL statement and its (possibly large) parameters."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


class SqlStore:
    """Base of the SQL stores: short sessions on ``engine``, SQL errors translated."""

    #: How error messages name this store's database: ``"<label> database error (...)"``.
    _label: ClassVar[str] = "registry"
    #: Whether :meth:`_tx` reports a connection invalidated mid-transaction as unavailable.
    _lost_connection_unavailable: ClassVar[bool] = False

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session (no transaction opened); SQL errors become :class:`RegistryError`."""
        try:
            with self._sessions() as session:
                yield session
        except SQLAlchemyError as exc:
            raise RegistryError(f"{self._label} database error ({_reason(exc)})") from exc

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One transaction; SQL errors translated (locked/unreachable -> RegistryUnavailable)."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except (OperationalError, PoolTimeout) as exc:
            raise RegistryUnavailable(f"the database is unavailable ({_reason(exc)})") from exc
        except SQLAlchemyError as exc:
            if (
                self._lost_connection_unavailable
                and isinstance(exc, DBAPIError)
                and exc.connection_invalidated
            ):
                raise RegistryUnavailable(f"the database connection was lost ({_reason(exc)})") from exc
            raise RegistryError(f"{self._label} database error ({_reason(exc)})") from exc

    @staticmethod
    def _insert_ignore(session: Session, table: Any, values: dict[str, Any]) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING; True when the row was inserted (told by RETURNING:
        ``rowcount`` is not reliable for this statement on every driver)."""
        stmt: Insert
        table = getattr(table, "__table__", table)
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            try:
                with session.begin_nested():
                    session.execute(insert(table).values(**values))
                return True
            except IntegrityError:
                return False
        key = next(iter(table.primary_key.columns))
        return session.execute(stmt.returning(key)).first() is not None

    @staticmethod
    def _insert_many_ignore(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> list[Row[Any]]:
        """Insert ``rows`` (dicts with the same keys) into ``table`` (a table or a mapped class)
        with one multi-row ``INSERT ... ON CONFLICT DO NOTHING ... RETURNING`` per chunk of
        rows (SQLAlchemy's "insertmanyvalues": the statement is compiled once and the chunks
        stay under the dialect's bound-parameter limit). Returns the rows inserted, every
        column, in no particular order; a row that conflicts with a stored row, or with an
        earlier row of ``rows``, is skipped and not returned."""
        if not rows:
            return []
        table = getattr(table, "__table__", table)
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            stmt: Insert = postgresql.insert(table).on_conflict_do_nothing()
        elif dialect == "sqlite":
            stmt = sqlite.insert(table).on_conflict_do_nothing()
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            keys = [c.name for c in table.primary_key.columns]
            new = [row for row in rows if SqlStore._insert_ignore(session, table, row)]
            query = select(table).where(
                tuple_(*table.primary_key.columns).in_([tuple(r[k] for k in keys) for r in new])
            )
            return list(session.execute(query)) if new else []
        return list(session.execute(stmt.returning(*table.columns), list(rows)))
