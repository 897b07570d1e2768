"""Schemathesis against the served OpenAPI schema: no request it generates makes a server error.

Bounded: a few examples per operation. Jobs are recorded but not run (the fuzzer would start a
crawler process per accepted scan), everything else runs as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from monitor.api import create_app
from monitor.app import open_monitor
from tests.fixtures.site import cropped_copy, registered_work
from tests.monitor.api.conftest import add_finding, make_settings, new_tenant


@pytest.fixture(scope="module")
def fuzz_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    mon = open_monitor(make_settings(Path(tmp_path_factory.mktemp("fuzz-home"))))
    app = create_app(mon)
    app.state.context.dispatcher.submit = lambda job: job  # recorded, not run
    tenant = new_tenant(mon, "fuzzer")
    from monitor.jobs import register_upload

    work = registered_work()
    register_upload(mon, tenant.account_id, work, filename="w.jpg", title="w", owner=None, options={})
    add_finding(mon, cropped_copy(work), page_url="http://f.example/", image_url="http://f.example/a.jpg")
    yield app, tenant.key


def test_no_request_makes_a_server_error(fuzz_key: tuple[object, str]) -> None:
    app, key = fuzz_key
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    statuses: list[int] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 25

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            statuses.append(response.status_code)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:800]}")
    assert not failures, "\n\n".join(failures)
    assert len(statuses) >= 2 * len(operations) and 200 in statuses  # it really called the API
