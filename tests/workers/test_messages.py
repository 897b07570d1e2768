"""Queueing analyses in batches (``workers/messages.py``) on a real Redis."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from monitor.settings import Settings
from tests.fixtures.services import RedisServer, free_port
from workers.app import create_celery
from workers.messages import ANALYSE_BATCH, ANALYSE_BATCH_TASK, queue_analyses


def _queued_messages(server: RedisServer) -> list[dict[str, Any]]:
    """The messages waiting on the ``analyse`` queue, oldest first, decoded."""
    client = redis.Redis.from_url(server.url)
    try:
        raw = client.lrange("analyse", 0, -1)
    finally:
        client.close()
    messages = []
    for item in reversed(raw):  # kombu LPUSHes and BRPOPs: the tail is the oldest
        envelope = json.loads(item)
        args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": args, "kwargs": kwargs})
    return messages


def _connections(server: RedisServer) -> int:
    """Connections the server has accepted so far (this one included)."""
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


def test_ids_go_a_batch_per_message_over_one_connection(tmp_path: Path, redis_server: RedisServer) -> None:
    app = create_celery(Settings(home=tmp_path, redis_url=redis_server.url))
    ids = [f"c{n:03d}" for n in range(2 * ANALYSE_BATCH + 5)]
    before = _connections(redis_server)
    assert queue_analyses(app, ids) == []
    assert queue_analyses(app, ["x1", "x2", "x3"], per_message=2) == []
    opened = _connections(redis_server) - before - 1  # less the count's own connection
    messages = _queued_messages(redis_server)
    assert [m["task"] for m in messages] == [ANALYSE_BATCH_TASK] * 5
    assert [m["args"] for m in messages] == [
        [ids[:ANALYSE_BATCH]],
        [ids[ANALYSE_BATCH : 2 * ANALYSE_BATCH]],
        [ids[2 * ANALYSE_BATCH :]],
        [["x1", "x2"]],
        [["x3"]],
    ]
    # The producer's pooled connection (and kombu's one for declaring the queue), not one per
    # message or per call.
    assert opened <= 2
    assert queue_analyses(app, []) == []
    with pytest.raises(ValueError):
        queue_analyses(app, ids, per_message=0)


def test_ids_that_cannot_be_queued_are_handed_back_at_once(tmp_path: Path) -> None:
    app = create_celery(Settings(home=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    ids = [f"c{n:03d}" for n in range(10 * ANALYSE_BATCH)]
    started = time.monotonic()
    assert queue_analyses(app, ids) == ids
    one_try = time.monotonic() - started
    started = time.monotonic()
    assert queue_analyses(app, ids[:1]) == ids[:1]
    # Ten messages' worth of ids cost one failed publish, not ten.
    assert one_try < 3 * (time.monotonic() - started) + 1.0
