"""The SHIP-host client mode against real local hosts: an HTTP server (http.server) and a TCP server speaking STP."""

import http.server
import io
import socketserver
import threading

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from accesscontrol.models import Cardholder, SystemAuditEntry
from integrations.ship import xml as ship
from integrations.ship.host import HostError, sync_user
from tests.factories import make_access_level, make_access_point, make_cardholder, make_partition, make_zone
from tests.integrations.ship.conftest import integrator

pytestmark = pytest.mark.django_db(transaction=True)

HOST_KEY = "host-secret"


def salto_user(ext_id: str, **fields) -> list:
    """A SaltoDBUser as a SALTO server answers it (with fields Space has no use for)."""
    base = {
        "ExtUserID": ext_id,
        "ExtPartitionID": "F3151A87832B44DBA19317A123BBBB66",
        "Title": "",
        "FirstName": "Thomas",
        "LastName": "Ravelli",
        "Office": "0",
        "AuditOpenings": "1",
        "UseADA": "0",
        "UseAntipassback": "0",
        "CalendarID": "1",
        "GPF1": "1203",
        "UserActivation": "2030-09-26T10:25:00",
        "UserExpiration.Enabled": "0",
        "UserExpiration": "2000-01-01T00:00:00",
        "KeyRevalidation.UpdatePeriod": "30",
        "KeyRevalidation.UnitOfUpdatePeriod": "0",
        "PINEnabled": "1",
        "PINCode": "",
        "IsBanned": "0",
        "PhoneNumber": "",
        **fields,
    }
    doors = [
        ("SaltoDB.AccessPermission.User_Door", [("ExtUserID", ext_id), ("ExtDoorID", "D-1"), ("TimezoneTableID", "0")])
    ]
    zones = [("SaltoDB.AccessPermission.User_Zone", [("ExtUserID", ext_id), ("ExtZoneID", "Lobby")])]
    groups = [("SaltoDB.Membership.User_Group", [("ExtUserID", ext_id), ("ExtGroupID", "Staff")])]
    return [
        *base.items(),
        ("CurrentKeyPeriod", [("StartDate", "2000-01-01T00:00:00"), ("EndDate", "2023-10-29T24:00:00")]),
        ("SaltoDB.AccessPermissionList.User_Door", doors),
        ("SaltoDB.AccessPermissionList.User_Zone", zones),
        ("SaltoDB.MembershipList.User_Group", groups),
    ]


class Host:
    """What the outside host knows and what it was asked."""

    def __init__(self, users: dict[str, list] | None = None, refuse: ship.ShipError | None = None):
        self.users = users or {}
        self.refuse = refuse
        self.requests: list[tuple[ship.Request, str]] = []

    def answer(self, document: bytes, key: str) -> bytes:
        request = ship.parse_request(document)
        self.requests.append((request, key))
        if key != HOST_KEY:
            return ship.build_error(request.name, ship.ShipError(401, "bad key"))
        if self.refuse:
            return ship.build_error(request.name, self.refuse)
        start = ship.text(request.params, "StartingFromExtUserID")
        following = sorted(ext_id for ext_id in self.users if ext_id >= start)[:1]
        listed = [("SaltoDBUser", self.users[ext_id]) for ext_id in following]
        return ship.build_response(request.name, [("SaltoDBUserList", listed), ("EOF", "1")])


def serving(host: Host, server: socketserver.BaseServer, url: str):
    """Run ``server`` on a thread for the test; ``host.url`` reaches it."""
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host.url = url.format(server.server_address[1])
    yield host
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_host():
    host = Host()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers["Content-Type"] != ship.CONTENT_TYPE:
                self.send_error(415)
                return
            if host.users == "broken":
                self.send_error(500)
                return
            answer = host.answer(body, self.headers.get("Salto-SHIP-Key", ""))
            self.send_response(200)
            self.send_header("Content-Type", ship.CONTENT_TYPE)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    yield from serving(host, http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler), "http://127.0.0.1:{}/ship")


@pytest.fixture
def tcp_host():
    host = Host()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            decoder = ship.FrameDecoder()
            while chunk := self.request.recv(65536):
                for document in decoder.feed(chunk):
                    key = ship.text(ship.parse_request(document).params, "ApiKey")
                    self.request.sendall(ship.frame(host.answer(document, key)))

    yield from serving(host, socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler), "tcp://127.0.0.1:{}")


@pytest.fixture
def places():
    make_access_point(ext_id="D-1")
    make_zone(name="Lobby")
    return make_access_level(name="Staff")


def places_door_name(holder) -> str:
    return holder.permissions.get(access_point__ext_id="D-1").access_point.name


def test_sync_over_http_creates_the_cardholder_with_the_hosts_permissions(http_host, places):
    http_host.users = {"U1": salto_user("U1"), "U2": salto_user("U2", FirstName="Other")}

    synced = sync_user("U1", integrator(), url=http_host.url, key=HOST_KEY)

    assert synced.created
    holder = Cardholder.objects.get(ext_id="U1")
    assert (holder.first_name, holder.last_name, holder.key_revalidation_days, holder.expiration) == (
        "Thomas",
        "Ravelli",
        30,
        None,
    )
    assert holder.partition.name == "General"  # the host's partition id names none of Space's
    assert not holder.has_pin  # the host shows no PIN
    assert list(holder.access_levels.values_list("name", flat=True)) == ["Staff"]
    assert sorted((grant.access_point_id is not None, str(grant.target)) for grant in holder.permissions.all()) == [
        (False, "Lobby"),
        (True, places_door_name(holder)),
    ]
    request, key = http_host.requests[0]
    assert (request.name, key) == ("SaltoDBUserList.Read", HOST_KEY)
    assert ship.text(request.params, "StartingFromExtUserID") == "U1"
    assert ship.text(request.params, "MaxCount") == "1"
    assert list(SystemAuditEntry.objects.filter(via="ship").values_list("action", flat=True).order_by("id")) == [
        "create",
        "set_permissions",
        "set_permissions",
    ]


def test_sync_over_tcp_updates_the_cardholder_and_keeps_their_pin(tcp_host, places):
    holder = make_cardholder(ext_id="U1", first_name="Old", pin="1234")
    tcp_host.users = {"U1": salto_user("U1", FirstName="New")}

    synced = sync_user("U1", integrator(), url=tcp_host.url, key=HOST_KEY)

    assert not synced.created
    holder.refresh_from_db()
    assert holder.first_name == "New"
    assert holder.check_pin("1234")
    assert [key for _, key in tcp_host.requests] == [HOST_KEY]


def test_a_host_without_the_user_changes_nothing(http_host, places):
    http_host.users = {"U2": salto_user("U2")}

    with pytest.raises(HostError, match="no user 'U1'"):
        sync_user("U1", integrator(), url=http_host.url, key=HOST_KEY)
    assert not Cardholder.objects.exists()


def test_a_host_refusing_is_a_host_error(tcp_host):
    with pytest.raises(HostError, match="401"):
        sync_user("U1", integrator(), url=tcp_host.url, key="wrong")


def test_a_door_unknown_to_space_fails_the_sync_as_a_whole(http_host):
    make_zone(name="Lobby")
    make_access_level(name="Staff")
    http_host.users = {"U1": salto_user("U1")}

    with pytest.raises(HostError, match="D-1"):
        sync_user("U1", integrator(), url=http_host.url, key=HOST_KEY)
    assert not Cardholder.objects.exists()
    assert not SystemAuditEntry.objects.filter(via="ship").exists()


def test_the_operators_partitions_apply_to_the_sync(http_host, places):
    mine, theirs = make_partition(), make_partition()
    make_cardholder(ext_id="U1", partition=theirs, first_name="Kept")
    http_host.users = {"U1": salto_user("U1")}

    with pytest.raises(HostError):
        sync_user("U1", integrator(partitions=[mine]), url=http_host.url, key=HOST_KEY)
    assert Cardholder.objects.get(ext_id="U1").first_name == "Kept"


def test_a_host_answering_http_500_is_a_host_error(http_host):
    http_host.users = "broken"

    with pytest.raises(HostError, match="HTTP 500"):
        sync_user("U1", integrator(), url=http_host.url, key=HOST_KEY)


def test_a_host_that_is_not_there_is_a_host_error():
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as closed:
        port = closed.server_address[1]

    with pytest.raises(HostError, match="did not answer"):
        sync_user("U1", integrator(), url=f"tcp://127.0.0.1:{port}", key=HOST_KEY, timeout=2)


@pytest.mark.parametrize("url", ["", "ftp://host/x", "tcp://host"])
def test_a_bad_host_url_is_a_host_error(url):
    with pytest.raises(HostError, match="SPACE_SHIP_HOST_URL"):
        sync_user("U1", integrator(), url=url, key=HOST_KEY)


def test_the_command_syncs_each_user_named(http_host, places):
    http_host.users = {"U1": salto_user("U1"), "U2": salto_user("U2")}
    operator = integrator()
    out = io.StringIO()

    with override_settings(SPACE_SHIP_HOST_URL=http_host.url, SPACE_SHIP_HOST_KEY=HOST_KEY):
        call_command(
            "ship_host_sync", "--ext-user-id", "U1", "--ext-user-id", "U2", "--operator", operator.username, stdout=out
        )

    assert out.getvalue().splitlines() == ["U1: created", "U2: created"]
    assert Cardholder.objects.filter(ext_id__in=["U1", "U2"]).count() == 2


def test_the_command_fails_when_a_user_cannot_be_synced(http_host, places):
    http_host.users = {"U1": salto_user("U1")}
    operator = integrator()
    err = io.StringIO()

    settings = override_settings(SPACE_SHIP_HOST_URL=http_host.url, SPACE_SHIP_HOST_KEY=HOST_KEY)
    with settings, pytest.raises(CommandError, match="1 of 2"):
        call_command(
            "ship_host_sync",
            "--ext-user-id",
            "U1",
            "--ext-user-id",
            "NOPE",
            "--operator",
            operator.username,
            stderr=err,
        )
    assert "NOPE" in err.getvalue()
    assert Cardholder.objects.filter(ext_id="U1").exists()


def test_the_command_needs_a_host(db):
    with override_settings(SPACE_SHIP_HOST_URL=""), pytest.raises(CommandError, match="SPACE_SHIP_HOST_URL"):
        call_command("ship_host_sync", "--ext-user-id", "U1", "--operator", "nobody")
