"""What the tests of the places, schedules, access level and device pages share."""

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accesscontrol.models import SystemAuditEntry
from tests.factories import make_operator


def client_with(*permissions, partitions=(), all_partitions=False) -> Client:
    """A signed-in browser whose operator holds ``permissions`` ("app.codename") in ``partitions``."""
    client = Client()
    client.force_login(make_operator(*permissions, partitions=partitions, all_partitions=all_partitions))
    return client


def web_rows(action: str | None = None) -> list[SystemAuditEntry]:
    rows = SystemAuditEntry.objects.filter(via="web").order_by("id")
    return list(rows.filter(action=action) if action else rows)


def queries_for(client: Client, url: str, per_page: int) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, {"per_page": per_page})
    assert response.status_code == 200
    return len(captured)


def page_text(response) -> str:
    return response.content.decode()
