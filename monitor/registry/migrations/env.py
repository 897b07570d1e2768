"""Alembic environment of the registry.

Used two ways:

* from code, by :func:`monitor.registry.upgrade_database`, which passes an open connection
  in ``config.attributes["connection"]``;
* from the command line: ``alembic -c monitor/registry/alembic.ini upgrade head``. The
  database is then ``-x database_url=...``, else ``sqlalchemy.url`` in the ini file, else
  the monitor's settings (``MONITOR_DATABASE_URL`` or the default SQLite file).

Migrations run in one transaction under a lock (a PostgreSQL advisory lock, SQLite's
``BEGIN IMMEDIATE``), so processes starting together on a fresh database do not race.
On SQLite, foreign keys are off while migrating: batch operations recreate tables, and
dropping ``works`` with foreign keys on would cascade-delete every fingerprint.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text

from monitor.registry.database import create_engine_for, normalize_url
from monitor.registry.models import Base

#: Key of the PostgreSQL advisory lock held while migrating ("monitor" in ASCII).
MIGRATION_LOCK_KEY = 0x6D6F6E69746F72

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("database_url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if url:
        return url
    from monitor.settings import load_settings

    return load_settings().resolved_database_url


def run_migrations_offline() -> None:
    """Write the SQL to stdout (``alembic upgrade head --sql``)."""
    url = normalize_url(_database_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction
        connection.commit()
    try:
        with connection.begin():
            if sqlite:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            elif connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows with dangling foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys = ON")
            connection.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_engine_for(_database_url())
    try:
        with engine.connect() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
