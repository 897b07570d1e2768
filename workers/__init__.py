"""Celery workers of the monitor: ``celery -A workers worker`` (or ``monitor worker``).

``workers.celery`` is the app built from the settings (``MONITOR_*``; ``MONITOR_REDIS_URL`` is
the broker), created on first access so that importing :mod:`workers.app` has no side effect;
:func:`workers.app.create_celery` builds a fresh one from given settings.
"""

from __future__ import annotations

from typing import Any

__all__ = ["celery"]

_app: Any = None


def __getattr__(name: str) -> Any:
    global _app
    if name == "celery":
        if _app is None:
            from monitor.settings import load_settings
            from workers.app import create_celery

            _app = create_celery(load_settings())
        return _app
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
