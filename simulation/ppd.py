"""A simulated PPD (portable programming device): it speaks the PPD API over real HTTP to a server and
programs software offline locks (simulation/offline_lock.py) as the handheld would program real ones.

A round: ask the server which locks need a visit; at each lock the PPD is
carried to, load the configuration (when the server says so), report what the
lock now runs, collect its audit trail, upload it, and acknowledge on the lock
only what the server says it stored. A PPD that dies between the upload and the
acknowledgement uploads the same events again next time; the server keeps each
once (docs/ppd.md).
"""

import dataclasses
import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request

from devices.lockconfig import LockConfig
from devices.locks import config_from_json
from simulation.offline_lock import OfflineLock


class ApiError(Exception):
    """The server answered with an error status (or not at all: ``status`` None)."""

    def __init__(self, status: int | None, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class JsonClient:
    """JSON over HTTP with an Authorization header; what a handheld or a phone app would use."""

    def __init__(self, base_url: str, authorization: str | None = None, *, timeout: float = 10.0):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Not an HTTP(S) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.authorization = authorization
        self.timeout = timeout

    def get(self, path: str, **query) -> dict:
        return self.request("GET", path + (f"?{urllib.parse.urlencode(query)}" if query else ""))

    def post(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body)

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        # Pagination links are absolute: they must point at the same server.
        url = path if path.startswith(self.base_url + "/") else self.base_url + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http(s) only, checked above)
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (as above)
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, _body(error.read())) from None
        except (urllib.error.URLError, TimeoutError) as error:
            raise ApiError(None, str(error)) from None


def _body(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def factory_config(lock_id: int) -> LockConfig:
    """What a lock holds out of its box: its id and nothing it could open a door with."""
    return LockConfig(lock_id=lock_id, access_point_id=0, site=0, card_key=bytes(32), revision=0)


@dataclasses.dataclass
class Visit:
    lock: int  # the lock's id in the API (the Device's primary key)
    loaded_revision: int | None = None  # None: the configuration was left as it was
    reasons: list[str] = dataclasses.field(default_factory=list)
    uploaded: int = 0
    new: int = 0
    acknowledged: int = 0  # events the lock forgot after the server confirmed them


class SimulatedPPD:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0):
        self.api = JsonClient(base_url, f"Api-Key {api_key}", timeout=timeout)

    def locks(self, needs_update: bool | None = None) -> list[dict]:
        """The server's list of offline locks (every page), with why each needs a visit."""
        query = {} if needs_update is None else {"needs_update": "true" if needs_update else "false"}
        page = self.api.get("/api/v1/ppd/locks/", **query)
        items = list(page["results"])
        while page.get("next"):
            page = self.api.get(page["next"])
            items += page["results"]
        return items

    def round(self, carried: dict[int, OfflineLock], at: dt.datetime) -> list[Visit]:
        """Visit every lock the PPD is carried to: load those the server lists as needing it, collect all."""
        wanted = {item["id"]: item["reasons"] for item in self.locks(needs_update=True)}
        visits = []
        for lock_pk, lock in carried.items():
            visit = Visit(lock_pk, reasons=wanted.get(lock_pk, []))
            if lock_pk in wanted:
                visit.loaded_revision = self.load(lock_pk, lock, at)
            self.collect(lock_pk, lock, visit)
            visits.append(visit)
        return visits

    def load(self, lock_pk: int, lock: OfflineLock, at: dt.datetime) -> int:
        """Load the server's configuration into ``lock`` and report what it runs now; returns the revision."""
        lock.load(config_from_json(self.api.get(f"/api/v1/ppd/locks/{lock_pk}/config/")))
        status = lock.status(at)
        self.api.post(
            f"/api/v1/ppd/locks/{lock_pk}/loaded/",
            {
                "config_revision": status.config_revision,
                "blacklist_number": status.blacklist_number,
                "battery": status.battery,
                "at": at.isoformat(),
            },
        )
        return status.config_revision

    def upload(self, lock_pk: int, events) -> dict:
        """Send collected events; the answer says how many were new and up to which id all are stored."""
        body = {"events": [_event_json(event) for event in events]}
        return self.api.post(f"/api/v1/ppd/locks/{lock_pk}/audit/", body)

    def collect(self, lock_pk: int, lock: OfflineLock, visit: Visit | None = None) -> Visit:
        """Collect the lock's audit trail, upload it, and acknowledge on the lock what the server stored."""
        visit = visit or Visit(lock_pk)
        events = lock.collect_audit()
        stored = self.upload(lock_pk, events)
        visit.uploaded, visit.new = stored["received"], stored["new"]
        visit.acknowledged = lock.acknowledge_audit(stored["stored_up_to"])
        return visit


def _event_json(event) -> dict:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "key_id": event.key_id,
        "uid": event.uid,
        "reason": event.reason,
    }
