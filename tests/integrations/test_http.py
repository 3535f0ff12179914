"""Space's one outbound HTTP client (integrations/http.py) against a real local server."""

import http.server
import socket
import threading

import pytest

from integrations import http as outbound

TIMEOUTS = outbound.Timeouts.within(2.0)


@pytest.fixture
def server():
    """Answers each POST with the status and body its path names: /503/body-text."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            _, status, body = self.path.split("/", 2)
            data = body.encode()
            self.send_response(int(status))
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def post(url: str, limit: int = 1024) -> outbound.Response:
    return outbound.post(outbound.Endpoint.from_url(url), b"{}", {}, TIMEOUTS, limit=limit)


def test_a_2xx_answer_is_ok_with_its_body_and_headers(server):
    response = post(f"{server}/201/made")

    assert (response.status, response.ok, response.body, response.truncated) == (201, True, b"made", False)
    assert response.content_type == "text/plain"


@pytest.mark.parametrize(
    ("status", "transient"), [(503, True), (500, True), (429, True), (408, True), (404, False), (400, False)]
)
def test_server_errors_and_throttling_are_transient_other_client_errors_permanent(server, status, transient):
    response = post(f"{server}/{status}/no")

    assert (response.status, response.ok, response.transient) == (status, False, transient)


def test_a_body_beyond_the_limit_is_cut_and_said_to_be(server):
    response = post(f"{server}/200/{'x' * 50}", limit=10)

    assert (response.body, response.truncated) == (b"x" * 10, True)


def test_no_listener_is_a_transient_failure_without_a_status():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    response = post(f"http://127.0.0.1:{port}/")

    assert (response.status, response.error, response.transient) == (None, "connection refused", True)


def test_an_endpoint_from_a_url_takes_the_schemes_default_port_and_keeps_the_query():
    assert outbound.Endpoint.from_url("https://host.example/a?b=1") == outbound.Endpoint(
        "https", "host.example", 443, "/a?b=1"
    )
    assert outbound.Endpoint.from_url("http://host.example").port == 80
    with pytest.raises(ValueError, match="Not an http"):
        outbound.Endpoint.from_url("ftp://host.example/")
