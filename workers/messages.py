"""Queueing analyses cheaply: candidate ids in batches, one message per batch, one producer.

A crawl stores hundreds of candidates a second; one Celery message per candidate costs the
crawler about a millisecond of CPU each (building the message, the publish, the Redis round
trip) and the worker as much again to receive it. :func:`queue_analyses` sends the ids as
``workers.tasks.analyse_candidates`` messages of at most :data:`ANALYSE_BATCH` ids each, over
one producer (one pooled broker connection). The task stays thin and idempotent: it takes the
ids, re-reads each candidate from the database and analyses those still ``pending``, so a
batch delivered twice changes nothing the second time.

Importing this module does not import the tasks (the crawlers send them by name).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery

log = logging.getLogger(__name__)

#: Several candidates per message: what crawls and the sweep send (``analyse_candidate``, one
#: id per message, stays for the messages already queued).
ANALYSE_BATCH_TASK = "workers.tasks.analyse_candidates"
#: Candidate ids per message: large enough to make the publish and the worker's per-message
#: cost negligible, small enough that a burst still spreads over several worker processes.
ANALYSE_BATCH = 16


def queue_analyses(
    app: Celery, candidate_ids: Sequence[str], *, per_message: int = ANALYSE_BATCH
) -> list[str]:
    """Queue the analysis of ``candidate_ids`` (stored and committed first); returns the ids
    that could not be queued because the broker could not be reached. Those stay ``pending``
    and the sweep queues them later; after the first failure the rest are not tried (each
    try waits out the publish retries), so an unreachable broker does not stall the caller."""
    if per_message < 1:
        raise ValueError("per_message must be at least 1")
    ids = list(candidate_ids)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for start in range(0, len(ids), per_message):
                batch = ids[start : start + per_message]
                args = [batch]
                app.send_task(
                    ANALYSE_BATCH_TASK,
                    args=args,
                    producer=producer,
                    ignore_result=True,
                    argsrepr=repr(args),  # Celery's default, saferepr, costs more than the rest
                    kwargsrepr="{}",
                )
                sent += len(batch)
    except Exception as exc:  # kombu/redis connection errors: the sweep recovers
        log.warning(
            "could not queue %d candidate(s) from %s on (%s); the sweep will requeue them",
            len(ids) - sent,
            ids[sent],
            exc,
        )
    return ids[sent:]
