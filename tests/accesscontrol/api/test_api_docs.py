"""The API's documentation pages (Swagger UI, Redoc) work on a site without internet access: they load
only the server's own static files, and the server serves those files."""

import re

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.test import Client

from space.management.commands.runspace import Command as RunSpace

pytestmark = pytest.mark.django_db

PAGES = ["/api/docs/", "/api/redoc/"]


def referenced_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


async def served_by_runspace(path: str) -> tuple[int, int]:
    """GET ``path`` from the application runspace serves (with its static files): status and body size."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(RunSpace().application(), scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=10)
    size = 0
    while True:
        message = await communicator.receive_output(timeout=10)
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.wait(timeout=10)
    return start["status"], size


@pytest.mark.parametrize("page", PAGES)
def test_the_api_docs_page_names_no_other_host(page):
    response = Client().get(page)

    text = response.content.decode()
    assert response.status_code == 200
    assert re.findall(r"https?://|//cdn|cdn\.", text) == []
    assert referenced_urls(text)
    assert [url for url in referenced_urls(text) if not url.startswith("/static/drf_spectacular_sidecar/")] == []


@pytest.mark.parametrize("page", PAGES)
def test_the_files_the_api_docs_page_loads_are_served_by_the_server(page):
    urls = referenced_urls(Client().get(page).content.decode())

    served = {url: async_to_sync(served_by_runspace)(url) for url in urls}

    assert [url for url, (status, size) in served.items() if status != 200 or size == 0] == []


def test_swagger_ui_reads_the_schema_from_this_server():
    text = Client().get("/api/docs/").content.decode()

    assert '"/api/schema/"' in text
    assert '"validatorUrl": null' in text
