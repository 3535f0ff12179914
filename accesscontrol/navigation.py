"""The web app's menu: what each operator sees is what their permissions open (a page not built is left out)."""

from django.urls import NoReverseMatch, reverse

# (section, [(label, url name, permission needed or None)])
MENU = [
    (
        "",
        [
            ("Dashboard", "dashboard", None),
            ("Live monitor", "monitor", "accesscontrol.view_auditevent"),
            ("Roll-call", "roll_call", "accesscontrol.view_muster"),
        ],
    ),
    ("Hotel", [("Front desk", "front_desk", "accesscontrol.view_key")]),
    (
        "People",
        [
            ("Cardholders", "cardholders", "accesscontrol.view_cardholder"),
            ("Keys", "keys", "accesscontrol.view_key"),
            ("Blacklist", "blacklist", "accesscontrol.view_blacklistentry"),
            ("Access levels", "access_levels", "accesscontrol.view_accesslevel"),
        ],
    ),
    (
        "Places",
        [
            ("Access points", "access_points", "accesscontrol.view_accesspoint"),
            ("Zones", "zones", "accesscontrol.view_zone"),
            ("Locations", "locations", "accesscontrol.view_location"),
            ("Devices", "devices", "devices.view_device"),
            ("Offline locks", "offline_locks", "devices.view_device"),
            ("OSDP buses", "osdp_buses", "devices.view_osdpbus"),
            ("Face terminals", "face_terminals", "devices.view_faceterminal"),
        ],
    ),
    (
        "Schedules",
        [
            ("Time periods", "time_periods", "accesscontrol.view_timeperiod"),
            ("Calendars", "calendars", "accesscontrol.view_calendar"),
            ("Mode schedules", "mode_schedules", "accesscontrol.view_modeschedule"),
        ],
    ),
    (
        "Records",
        [
            ("Audit trail", "audit_trail", "accesscontrol.view_auditevent"),
            ("System auditor", "system_audit", "accesscontrol.view_systemauditentry"),
            ("Jobs", "jobs", None),
        ],
    ),
    (
        "Administration",
        [
            ("Operators", "operators", "accesscontrol.view_operator"),
            ("Operator groups", "operator_groups", "accesscontrol.view_operatorgroup"),
        ],
    ),
    (
        "System",
        [
            ("Cardholder sources", "sources", "accesscontrol.view_cardholdersource"),
            ("Backups", "backups", "accesscontrol.view_backup"),
        ],
    ),
]


def menu_for(operator, current_path: str) -> list[dict]:
    sections = []
    for title, entries in MENU:
        items = []
        for label, name, permission in entries:
            if permission and not operator.has_perm(permission):
                continue
            try:
                url = reverse(name)
            except NoReverseMatch:
                continue
            active = current_path == url or (url != "/" and current_path.startswith(url))
            items.append({"label": label, "url": url, "active": active})
        if operator.is_staff and title == "Administration":
            items.append({"label": "Django admin", "url": reverse("admin:index"), "active": False})
        if items:
            sections.append({"title": title, "items": items})
    return sections
