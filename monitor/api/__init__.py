"""The HTTP API and the dashboard (FastAPI): ``create_app(settings)`` or ``create_app(monitor)``."""

from __future__ import annotations

from monitor.api.app import create_app

__all__ = ["create_app"]
