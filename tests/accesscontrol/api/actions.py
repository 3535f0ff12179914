"""Every API endpoint that acts rather than stores one object (commands, encoding, PPD, webhooks' actions, mobile
keys, the hotel), described once for the generic permission tests in ``test_generic_actions.py``.

A case makes what the call needs (``setup``, given a partition), says the request, the permission that allows
it and the answer then, and which tables the call may change (all their rows are compared before and after a
refused call; the system auditor is always among them).
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Model
from django.utils import timezone

from accesscontrol.models import AuditEvent, BlacklistEntry, Key, Stay, SystemAuditEntry
from devices.models import Device, DeviceCommand, EncodeJob, LockState
from hotel import actions as hotel
from integrations.mobilekeys import services as mobilekeys
from integrations.mobilekeys.models import MobileKey, PhoneEnrolment
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from tests.accesscontrol.api.endpoints import make_device, make_subscription
from tests.devices.encoders_support import make_encoder
from tests.devices.test_locks import make_lock
from tests.factories import make_access_point, make_cardholder, make_key, make_operator
from tests.hotel.support import days, make_hotel

NOW = "2026-11-20T10:00:00Z"


@dataclass
class Action:
    name: str
    method: str
    url: Callable[[dict], str]
    permission: str  # the one permission the call needs
    allowed: int  # the answer to an operator holding it (and ``also``) in every partition
    setup: Callable[[Model], dict] = lambda partition: {}
    body: Callable[[dict], dict] | None = None
    also: tuple[str, ...] = ()  # what the operator needs besides, to see the objects the call names
    tables: tuple[type[Model], ...] = ()  # what the call may change
    # The answer to an operator holding the permission in another partition only; None where the call is
    # site-wide (devices, locks) or a list (it answers, without what that partition holds).
    elsewhere: int | None = None

    def __str__(self):
        return self.name

    def request(self, client, world: dict):
        body = self.body(world) if self.body else None
        return getattr(client, self.method)(self.url(world), body, format="json")

    def state(self) -> dict:
        """Every row of every table the call may change, as stored."""
        return {
            model._meta.label: [tuple(row.values()) for row in model.objects.order_by("pk").values()]
            for model in (*self.tables, SystemAuditEntry)
        }


# --- what the calls need ---------------------------------------------------------------------------------------


def a_door(partition) -> dict:
    point = make_access_point(partition=partition)
    make_device_at(point)
    return {"point": point}


def make_device_at(point) -> Device:
    device = make_device()
    device.doors.create(number=1, access_point=point)
    return device


def a_key_and_an_encoder(partition) -> dict:
    key = make_key(make_cardholder(partition=partition), uid="04A0A0A0")
    encoder = make_encoder()
    job = EncodeJob.objects.create(key=key, encoder=encoder, data=b"")
    return {"key": key, "encoder": encoder, "job": job}


def a_lock(partition) -> dict:
    return {"lock": make_lock(make_access_point(name="Room 12", partition=partition))}


def a_failed_delivery(partition) -> dict:
    subscription = make_subscription(partition)
    delivery = WebhookDelivery.objects.create(
        subscription=subscription,
        event_key="event-1",
        payload={"type": "audit_event", "key": "event-1", "kind": "tamper"},
        status=DeliveryStatus.FAILED,
        tries=1,
        next_attempt_at=timezone.now(),
        last_error="HTTP 500",
    )
    return {"subscription": subscription, "delivery": delivery}


def a_mobile_key(partition) -> dict:
    guest = make_cardholder(partition=partition)
    mobile, _ = mobilekeys.issue(guest, operator=make_operator(is_superuser=True), via="web")
    return {"guest": guest, "key": mobile.key}


def a_hotel(partition) -> dict:
    return make_hotel()


def a_guest(partition) -> dict:
    world = make_hotel()
    hotel.check_in(room="101", departure=days(2), encoder=None, via="web")
    return world


def stay(room="101", **fields) -> dict:
    return {"room": room, "departure": (timezone.now() + dt.timedelta(days=2)).isoformat(), **fields}


KEYS = (Key, Stay, BlacklistEntry, EncodeJob)
WEBHOOKS = (WebhookSubscription, WebhookDelivery)

ACTIONS = [
    # --- devices ---------------------------------------------------------------------------------------------
    Action(
        "rekey a device",
        "post",
        lambda w: f"/api/v1/devices/{w['device'].pk}/rekey/",
        "devices.change_device",
        200,
        setup=lambda p: {"device": make_device()},
        body=lambda w: {},
        also=("devices.view_device",),
        tables=(Device,),
    ),
    Action(
        "issue a command",
        "post",
        lambda w: "/api/v1/commands/",
        "devices.add_devicecommand",
        201,
        setup=a_door,
        body=lambda w: {"op": "open", "access_point": w["point"].pk},
        also=("accesscontrol.view_accesspoint", "accesscontrol.change_accesspoint"),
        tables=(DeviceCommand, AuditEvent),
        elsewhere=400,  # the access point is not theirs to name
    ),
    Action(
        "encode a key",
        "post",
        lambda w: f"/api/v1/keys/{w['key'].pk}/encode/",
        "accesscontrol.add_key",
        202,
        setup=a_key_and_an_encoder,
        body=lambda w: {"encoder": w["encoder"].pk},
        also=("accesscontrol.view_key", "accesscontrol.view_cardholder"),
        tables=KEYS,
        elsewhere=404,
    ),
    Action(
        "follow an encode job",
        "get",
        lambda w: f"/api/v1/encode-jobs/{w['job'].pk}/",
        "accesscontrol.view_key",
        200,
        setup=a_key_and_an_encoder,
        tables=KEYS,
        elsewhere=404,
    ),
    # --- the portable programming device -------------------------------------------------------------------
    Action("list the locks", "get", lambda w: "/api/v1/ppd/locks/", "devices.use_ppd", 200, setup=a_lock),
    Action(
        "export a lock's configuration",
        "get",
        lambda w: f"/api/v1/ppd/locks/{w['lock'].pk}/config/",
        "devices.use_ppd",
        200,
        setup=a_lock,
    ),
    Action(
        "report a lock loaded",
        "post",
        lambda w: f"/api/v1/ppd/locks/{w['lock'].pk}/loaded/",
        "devices.use_ppd",
        200,
        setup=a_lock,
        body=lambda w: {"config_revision": 1, "blacklist_number": 0, "battery": 50, "at": NOW},
        tables=(LockState,),
    ),
    Action(
        "upload a lock's audit trail",
        "post",
        lambda w: f"/api/v1/ppd/locks/{w['lock'].pk}/audit/",
        "devices.use_ppd",
        200,
        setup=a_lock,
        body=lambda w: {"events": [{"id": 1, "at": NOW, "kind": "access_granted"}]},
        tables=(AuditEvent, LockState),
    ),
    # --- webhooks ------------------------------------------------------------------------------------------
    Action(
        "list a subscription's deliveries",
        "get",
        lambda w: f"/api/v1/webhooks/{w['subscription'].pk}/deliveries/",
        "integrations.view_webhooksubscription",
        200,
        setup=a_failed_delivery,
        elsewhere=404,
    ),
    Action(
        "redeliver",
        "post",
        lambda w: f"/api/v1/webhooks/{w['subscription'].pk}/deliveries/{w['delivery'].pk}/redeliver/",
        "integrations.change_webhooksubscription",
        200,
        setup=a_failed_delivery,
        body=lambda w: {},
        also=("integrations.view_webhooksubscription",),
        tables=WEBHOOKS,
        elsewhere=404,
    ),
    Action(
        "resume a subscription",
        "post",
        lambda w: f"/api/v1/webhooks/{w['subscription'].pk}/resume/",
        "integrations.change_webhooksubscription",
        200,
        setup=a_failed_delivery,
        body=lambda w: {"redeliver_failed": True},
        also=("integrations.view_webhooksubscription",),
        tables=WEBHOOKS,
        elsewhere=404,
    ),
    Action(
        "rotate a subscription's secret",
        "post",
        lambda w: f"/api/v1/webhooks/{w['subscription'].pk}/rotate-secret/",
        "integrations.change_webhooksubscription",
        200,
        setup=a_failed_delivery,
        body=lambda w: {},
        also=("integrations.view_webhooksubscription",),
        tables=WEBHOOKS,
        elsewhere=404,
    ),
    # --- mobile keys ---------------------------------------------------------------------------------------
    Action(
        "list mobile keys",
        "get",
        lambda w: "/api/v1/mobile-keys/",
        "accesscontrol.view_key",
        200,
        setup=a_mobile_key,
    ),
    Action(
        "issue a mobile key",
        "post",
        lambda w: "/api/v1/mobile-keys/",
        "accesscontrol.add_key",
        201,
        setup=a_mobile_key,
        body=lambda w: {"cardholder": w["guest"].pk},
        also=("accesscontrol.view_key", "accesscontrol.view_cardholder"),
        tables=(Key, MobileKey),
        elsewhere=400,
    ),
    Action(
        "invite a phone",
        "post",
        lambda w: f"/api/v1/mobile-keys/{w['key'].pk}/enrol/",
        "accesscontrol.change_key",
        201,
        setup=a_mobile_key,
        body=lambda w: {},
        also=("accesscontrol.view_key",),
        tables=(Key, MobileKey, PhoneEnrolment),
        elsewhere=404,
    ),
    Action(
        "cancel a mobile key",
        "post",
        lambda w: f"/api/v1/mobile-keys/{w['key'].pk}/cancel/",
        "accesscontrol.change_key",
        200,
        setup=a_mobile_key,
        body=lambda w: {},
        also=("accesscontrol.view_key",),
        tables=(Key, MobileKey, BlacklistEntry),
        elsewhere=404,
    ),
    # --- the hotel -----------------------------------------------------------------------------------------
    Action(
        "check in",
        "post",
        lambda w: "/api/v1/hotel/check-in/",
        "accesscontrol.add_key",
        201,
        setup=a_hotel,
        body=lambda w: stay(),
        tables=KEYS,
        elsewhere=403,
    ),
    Action(
        "copy a guest's key",
        "post",
        lambda w: "/api/v1/hotel/copy/",
        "accesscontrol.add_key",
        201,
        setup=a_guest,
        body=lambda w: stay(),
        tables=KEYS,
        elsewhere=403,
    ),
    Action(
        "modify a stay",
        "post",
        lambda w: "/api/v1/hotel/modify/",
        "accesscontrol.change_key",
        200,
        setup=a_guest,
        body=lambda w: {"room": "101", "guest_name": "Ada"},
        tables=KEYS,
        elsewhere=403,
    ),
    Action(
        "check out",
        "post",
        lambda w: "/api/v1/hotel/check-out/",
        "accesscontrol.change_key",
        200,
        setup=a_guest,
        body=lambda w: {"room": "101"},
        tables=KEYS,
        elsewhere=403,
    ),
    # With the permission, the call gets as far as looking for the encoder (there is none: 400).
    Action(
        "read a key",
        "post",
        lambda w: "/api/v1/hotel/read-key/",
        "accesscontrol.view_key",
        400,
        setup=a_hotel,
        body=lambda w: {"encoder": "E1", "wait_seconds": 0},
        tables=KEYS,
    ),
    Action("list the rooms", "get", lambda w: "/api/v1/hotel/rooms/", "accesscontrol.view_key", 200, setup=a_hotel),
    Action("list the stays", "get", lambda w: "/api/v1/hotel/stays/", "accesscontrol.view_key", 200, setup=a_guest),
]

# Called by phones, not operators: no operator permission lets a call through, and none without a phone credential.
PHONE_ACTIONS = [
    Action("fetch a phone's keys", "get", lambda w: "/api/v1/phone/keys/", "", 401, tables=(PhoneEnrolment,)),
]
