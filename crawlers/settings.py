"""Scrapy settings module (``scrapy.cfg``): built from the monitor's one settings object.

Everything configurable lives in :mod:`monitor.settings` (``MONITOR_*``, ``config/monitor.toml``);
:func:`crawlers.config.scrapy_settings` maps it onto Scrapy's names.
"""

from __future__ import annotations

from crawlers.config import scrapy_settings
from monitor.settings import load_settings

globals().update(scrapy_settings(load_settings()))
