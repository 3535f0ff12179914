"""The mode schedule pages, the roll-call and muster report pages, a zone's forgive and correct forms, the monitor's
live counts and muster button, and the admin's mode schedules."""

import csv
import datetime as dt
import io

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accesscontrol.choices import PresenceSource
from accesscontrol.models import ModeChange, ModeSchedule, Presence, PresenceChange, SiteSettings, SystemAuditEntry
from tests.accesscontrol.web.places_helpers import client_with, page_text, web_rows
from tests.factories import make_access_point, make_cardholder, make_operator, make_partition, make_zone

pytestmark = pytest.mark.django_db

SCHEDULES = ("accesscontrol.view_modeschedule", "accesscontrol.change_modeschedule")
MUSTER = "accesscontrol.view_muster"
FORGIVE = ("accesscontrol.view_zone", "accesscontrol.forgive_presence", "accesscontrol.view_presence")


def inside(zone, *holders, minutes_ago: int = 10, point=None):
    at = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return [
        Presence.objects.create(
            cardholder=holder, zone=zone, inside=True, since=at, last_at=at, access_point=point, source="online"
        )
        for holder in holders
    ]


def changes_form(schedule, *rows) -> dict:
    """The change rows as the page posts them: ``rows`` are (at, mode, days...) for new rows."""
    form = {
        "changes-TOTAL_FORMS": str(len(rows)),
        "changes-INITIAL_FORMS": "0",
        "changes-MIN_NUM_FORMS": "0",
        "changes-MAX_NUM_FORMS": "48",
    }
    for index, (at, mode, *days) in enumerate(rows):
        form[f"changes-{index}-at"], form[f"changes-{index}-mode"] = at, mode
        form.update({f"changes-{index}-{day}": "on" for day in days})
    return form


# --- mode schedules -------------------------------------------------------------------------------


def test_a_mode_schedule_is_created_and_its_change_rows_saved_as_one_recorded_change(partition):
    client = client_with(*SCHEDULES, "accesscontrol.add_modeschedule", partitions=[partition])

    created = client.post("/mode-schedules/new/", {"name": "Lobby hours", "partition": partition.pk})
    schedule = ModeSchedule.objects.get(name="Lobby hours")
    saved = client.post(
        f"/mode-schedules/{schedule.pk}/changes/",
        changes_form(schedule, ("07:30", "office", "monday", "friday"), ("19:00", "standard", "monday", "holiday")),
    )

    assert created.status_code == 302 and saved.status_code == 302
    assert [str(change) for change in schedule.changes.all()] == ["07:30 Office", "19:00 Standard"]
    assert [row.action for row in web_rows()] == ["create", "update"]
    assert web_rows("update")[0].detail["changes"]["changes"] == {
        "from": [],
        "to": ["07:30 office Mon Fri", "19:00 standard Mon Hol"],
    }
    page = page_text(client.get(f"/mode-schedules/{schedule.pk}/"))
    assert "Lobby hours" in page and "Office" in page


def test_a_change_row_without_a_day_is_refused_with_its_error_and_nothing_is_saved(partition):
    client = client_with(*SCHEDULES, partitions=[partition])
    schedule = ModeSchedule.objects.create(name="Shop", partition=partition)

    response = client.post(f"/mode-schedules/{schedule.pk}/changes/", changes_form(schedule, ("08:00", "open")))

    assert response.status_code == 200
    assert "Mark at least one day" in page_text(response)
    assert not ModeChange.objects.exists()
    assert web_rows() == []


def test_an_operator_of_another_partition_can_neither_see_nor_change_a_schedule(partition):
    schedule = ModeSchedule.objects.create(name="Shop", partition=partition)
    client = client_with(*SCHEDULES, partitions=[make_partition()])

    seen = client.get(f"/mode-schedules/{schedule.pk}/")
    changed = client.post(
        f"/mode-schedules/{schedule.pk}/changes/", changes_form(schedule, ("08:00", "open", "sunday"))
    )

    assert (seen.status_code, changed.status_code) == (404, 404)
    assert not ModeChange.objects.exists()


def test_access_point_and_zone_forms_name_a_mode_schedule_and_the_zone_its_presence_rules(partition):
    schedule = ModeSchedule.objects.create(name="Shop", partition=partition)
    zone = make_zone(partition=partition)
    client = client_with(
        "accesscontrol.view_zone",
        "accesscontrol.change_zone",
        "accesscontrol.view_modeschedule",
        partitions=[partition],
    )

    response = client.post(
        f"/zones/{zone.pk}/edit/",
        {
            "name": zone.name,
            "partition": partition.pk,
            "anti_passback": "on",
            "passback_kind": "soft",
            "passback_minutes": "15",
            "roll_call": "on",
            "max_occupancy": "40",
            "mode_schedule": schedule.pk,
        },
    )

    zone.refresh_from_db()
    assert response.status_code == 302
    assert (zone.passback_kind, zone.passback_minutes, zone.roll_call, zone.max_occupancy) == ("soft", 15, True, 40)
    assert zone.mode_schedule == schedule
    detail = page_text(client.get(f"/zones/{zone.pk}/"))
    assert "Soft" in detail and "40 people" in detail and "Shop" in detail


def test_the_access_point_page_says_who_set_its_mode_and_its_schedule(partition):
    schedule = ModeSchedule.objects.create(name="Shop", partition=partition)
    point = make_access_point(partition=partition, mode_schedule=schedule, opening_mode="office")
    point.mode_source = "schedule"
    point.save()
    client = client_with("accesscontrol.view_accesspoint", partitions=[partition])

    page = page_text(client.get(f"/access-points/{point.pk}/"))

    assert "Office" in page and "its schedule of automatic changes" in page and "Shop" in page


# --- roll-call ------------------------------------------------------------------------------------


def test_the_roll_call_lists_the_areas_the_operator_may_muster_with_their_counts(partition):
    hall = make_zone(name="Hall", partition=partition, roll_call=True, max_occupancy=2)
    make_zone(name="Other wing", partition=make_partition(), roll_call=True)
    make_zone(name="Not an area", partition=partition)
    inside(hall, make_cardholder(), make_cardholder())
    client = client_with(MUSTER, partitions=[partition])

    response = client.get("/roll-call/")

    assert response.status_code == 200
    assert [(area.name, area.count, area.full) for area in response.context["areas"]] == [("Hall", 2, True)]


def test_an_area_lists_who_is_inside_newest_first_paginated_and_searchable(partition):
    hall = make_zone(partition=partition, roll_call=True)
    ada = make_cardholder(first_name="Ada", last_name="Lovelace", partition=make_partition())
    alan = make_cardholder(first_name="Alan", last_name="Turing")
    inside(hall, ada, minutes_ago=30)
    inside(hall, alan, minutes_ago=5)
    gone = inside(hall, make_cardholder(last_name="Gone"))[0]
    gone.inside = False
    gone.save()
    client = client_with(MUSTER, partitions=[partition])

    everyone = client.get(f"/roll-call/{hall.pk}/", {"per_page": 10})
    found = client.get(f"/roll-call/{hall.pk}/", {"q": "lovelace"})

    assert [row.cardholder for row in everyone.context["page_obj"]] == [alan, ada]
    assert everyone.context["page_obj"].paginator.count == 2
    assert [row.cardholder for row in found.context["page_obj"]] == [ada]


def test_without_the_muster_permission_there_is_no_roll_call(partition):
    hall = make_zone(partition=partition, roll_call=True)
    client = client_with("accesscontrol.view_zone", partitions=[partition])
    elsewhere = client_with(MUSTER, partitions=[make_partition()])

    assert client.get("/roll-call/").status_code == 403
    assert client.get("/muster/").status_code == 403
    assert elsewhere.get(f"/roll-call/{hall.pk}/").status_code == 404
    assert elsewhere.get("/muster/", {"zone": hall.pk}).status_code == 404


# --- the muster report ----------------------------------------------------------------------------


def test_the_muster_report_prints_everyone_inside_by_area_and_name(partition):
    hall, lab = (make_zone(name=name, partition=partition, roll_call=True) for name in ("Hall", "Lab"))
    door = make_access_point(name="North door", partition=partition)
    inside(hall, make_cardholder(first_name="Zoe", last_name="Young"), make_cardholder(last_name="Adams"), point=door)
    inside(lab, make_cardholder(last_name="Brown"))
    client = client_with(MUSTER, partitions=[partition])

    page = client.get("/muster/")
    one = client.get("/muster/", {"zone": lab.pk})

    text = page_text(page)
    assert page.status_code == 200
    assert [(area.name, area.count) for area in page.context["areas"]] == [("Hall", 2), ("Lab", 1)]
    assert text.index("Adams") < text.index("Young, Zoe") < text.index("Brown")
    assert "North door" in text and "@media print" not in text  # the print rules are in the stylesheet
    assert [area.name for area in one.context["areas"]] == ["Lab"]


def test_the_muster_report_exports_csv_and_pdf(partition):
    hall = make_zone(name="Hall", partition=partition, roll_call=True)
    inside(hall, make_cardholder(first_name="Ada", last_name="=Lovelace", phone_number="+441234"))
    client = client_with(MUSTER, partitions=[partition])

    exported = client.get("/muster/report.csv")
    printed = client.get("/muster/report.pdf", {"zone": hall.pk})

    rows = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert exported["Content-Type"].startswith("text/csv")
    assert rows[0][:3] == ["area", "last_name", "first_name"]
    assert rows[1][:3] == ["Hall", "'=Lovelace", "Ada"] and "'+441234" in rows[1]  # nothing a spreadsheet would run
    document = b"".join(printed.streaming_content)
    assert printed["Content-Type"] == "application/pdf"
    assert document.startswith(b"%PDF-1.4") and document.rstrip().endswith(b"%%EOF")
    assert b"(Hall) Tj" in document and b"=Lovelace, Ada" in document


def test_a_long_muster_report_runs_over_pages_with_a_valid_cross_reference_table(partition):
    hall = make_zone(name="Hall", partition=partition, roll_call=True)
    inside(hall, *[make_cardholder(last_name=f"Person {number:03d}") for number in range(150)])
    client = client_with(MUSTER, partitions=[partition])

    document = b"".join(client.get("/muster/report.pdf").streaming_content)

    assert document.count(b"/Type /Page ") == 3
    start = int(document.rsplit(b"startxref\n", 1)[1].split()[0])
    assert document[start:].startswith(b"xref\n")
    entries = document[start:].split(b"\n")[3:]
    for entry in entries:
        if entry.startswith(b"trailer"):
            break
        offset = int(entry[:10])
        assert document[offset:].split(b" ", 1)[0].isdigit()


# --- forgive and correct on the zone page ---------------------------------------------------------


def test_a_zone_page_lists_who_is_inside_for_operators_who_see_presence(partition):
    zone = make_zone(partition=partition, anti_passback=True)
    ada = make_cardholder(first_name="Ada", last_name="Lovelace")
    inside(zone, ada)
    client = client_with(*FORGIVE, partitions=[partition])

    response = client.get(f"/zones/{zone.pk}/")

    assert [row.cardholder for row in response.context["presences"]] == [ada]
    assert response.context["presence_count"] == 1 and response.context["may_forgive"]
    assert "Forgive everyone" in page_text(response)


def test_forgiving_one_cardholder_ends_their_presence_only(partition):
    zone = make_zone(partition=partition, anti_passback=True)
    ada, alan = make_cardholder(), make_cardholder()
    inside(zone, ada, alan)
    client = client_with(*FORGIVE, partitions=[partition])

    response = client.post(f"/zones/{zone.pk}/forgive/", {"cardholder": ada.pk})

    assert response.status_code == 302
    assert set(Presence.objects.filter(inside=True).values_list("cardholder_id", flat=True)) == {alan.pk}
    assert Presence.objects.get(cardholder=ada).source == PresenceSource.OPERATOR
    assert [(row.action, row.detail["ended"]) for row in web_rows()] == [("forgive_presence", 1)]


def test_forgiving_a_zone_ends_everyone_inside_it(partition):
    zone = make_zone(partition=partition, anti_passback=True)
    inside(zone, make_cardholder(), make_cardholder())
    client = client_with(*FORGIVE, partitions=[partition])

    client.post(f"/zones/{zone.pk}/forgive/")

    assert not Presence.objects.filter(inside=True).exists()
    assert PresenceChange.objects.filter(inside=False).count() == 2


def test_correcting_the_count_records_the_correction(partition):
    zone = make_zone(partition=partition, max_occupancy=10)
    inside(zone, make_cardholder(), make_cardholder())
    client = client_with(*FORGIVE, partitions=[partition])

    client.post(f"/zones/{zone.pk}/occupancy/", {"count": "5"})
    bad = client.post(f"/zones/{zone.pk}/occupancy/", {"count": "-1"})

    zone.refresh_from_db()
    assert zone.occupancy_correction == 3
    assert bad.status_code == 302 and zone.occupancy_correction == 3
    assert [row.detail for row in web_rows("correct_occupancy")] == [{"before": 2, "count": 5, "correction": 3}]


def test_without_forgive_permission_in_the_zones_partition_nothing_changes(partition):
    zone = make_zone(partition=partition, anti_passback=True)
    inside(zone, make_cardholder())
    viewer = client_with("accesscontrol.view_zone", "accesscontrol.view_presence", partitions=[partition])
    elsewhere = make_operator(*FORGIVE, partitions=[make_partition()])
    other = Client()
    other.force_login(elsewhere)

    answers = [
        viewer.post(f"/zones/{zone.pk}/forgive/").status_code,
        viewer.post(f"/zones/{zone.pk}/occupancy/", {"count": 0}).status_code,
        other.post(f"/zones/{zone.pk}/forgive/").status_code,
    ]

    assert answers == [403, 403, 404]
    assert Presence.objects.filter(inside=True).count() == 1
    assert not SystemAuditEntry.objects.exists()


# --- the monitor ----------------------------------------------------------------------------------


MONITOR = ("accesscontrol.view_auditevent", MUSTER)


def test_the_monitor_counts_roll_call_areas_and_limited_zones(partition):
    hall = make_zone(name="Hall", partition=partition, roll_call=True)
    shop = make_zone(name="Shop", partition=partition, max_occupancy=1)
    inside(hall, make_cardholder(), make_cardholder())
    inside(shop, make_cardholder())
    client = client_with(*MONITOR, partitions=[partition])

    page = client.get(reverse("monitor"))
    panel = client.get(reverse("monitor_roll_call"))

    assert [(zone.name, zone.count) for zone in page.context["roll_call_areas"]] == [("Hall", 2)]
    assert [(zone.name, zone.count, zone.full) for zone in panel.context["limited_zones"]] == [("Shop", 1, True)]
    assert page.context["emergency"] is False
    assert 'id="muster-link"' in page_text(page) and "btn-muster" not in page_text(page)


def test_in_a_lockdown_the_monitor_puts_the_muster_report_first(partition):
    make_zone(name="Hall", partition=partition, roll_call=True)
    site = SiteSettings.load()
    site.lockdown = True
    site.save()
    client = client_with(*MONITOR, partitions=[partition])
    without = client_with("accesscontrol.view_auditevent", partitions=[partition])

    text = page_text(client.get(reverse("monitor")))

    assert "Site lockdown in force" in text and "btn-muster" in text
    assert 'href="/muster/"' in text
    assert "muster-link" not in page_text(without.get(reverse("monitor")))


def test_the_monitor_shows_each_doors_opening_mode(partition):
    make_access_point(name="Front", partition=partition, opening_mode="office")
    client = client_with("accesscontrol.view_auditevent", partitions=[partition])

    response = client.get(reverse("monitor"))

    [point] = response.context["access_points"]
    assert point.get_opening_mode_display() == "Office"
    assert "Office" in page_text(response)


def test_the_monitor_shows_a_scheduled_doors_next_change(partition):
    every_day = dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"), True)
    schedule = ModeSchedule.objects.create(name="Lobby hours", partition=partition)
    ModeChange.objects.create(schedule=schedule, at=dt.time(0, 0), mode="timed", **every_day)
    ModeChange.objects.create(schedule=schedule, at=dt.time(23, 59), mode="standard", **every_day)
    make_access_point(name="Lobby", partition=partition, mode_schedule=schedule)
    client = client_with("accesscontrol.view_auditevent", partitions=[partition])

    response = client.get(reverse("monitor"))

    [point] = response.context["access_points"]
    instant, label = point.next_change
    assert instant > timezone.now() and label in ("Timed", "Standard")
    assert f"{label} at" in page_text(response)


# --- the admin ------------------------------------------------------------------------------------


def test_a_mode_schedule_added_in_the_admin_is_saved_with_its_changes_by_the_action(admin_client, admin_user):
    partition = make_partition()
    form = {
        "name": "Lobby",
        "partition": partition.pk,
        "description": "",
        "changes-TOTAL_FORMS": "1",
        "changes-INITIAL_FORMS": "0",
        "changes-0-at": "07:00",
        "changes-0-mode": "office",
        "changes-0-monday": "on",
    }

    response = admin_client.post(reverse("admin:accesscontrol_modeschedule_add"), form)

    assert response.status_code == 302
    schedule = ModeSchedule.objects.get(name="Lobby")
    assert [str(change) for change in schedule.changes.all()] == ["07:00 Office"]
    [entry] = SystemAuditEntry.objects.all()
    assert (entry.action, entry.via, entry.operator_id) == ("create", "admin", admin_user.pk)


def test_the_admin_shows_an_access_points_mode_source_read_only(admin_client):
    point = make_access_point()

    response = admin_client.get(reverse("admin:accesscontrol_accesspoint_change", args=[point.pk]))

    form = response.context["adminform"].form
    assert "mode_schedule" in form.fields and "mode_source" not in form.fields
    assert "Its configuration" in page_text(response)
