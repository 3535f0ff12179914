"""``manage.py bench_web`` and its generator (simulation.benchmarks.web), on a tiny site."""

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accesscontrol.models import AuditEvent, Cardholder, Key, Operator, Partition
from simulation import sitegen
from simulation.benchmarks import web as benchmark
from tests.factories import make_cardholder

Q_ISSUED = Q(keys__status="issued")
PAGES = {
    "cardholders": "cardholders",
    "cardholder_search": "cardholders",
    "cardholder": "cardholder",
    "audit_trail": "audit_trail",
    "audit_trail_filtered": "audit_trail",
}


def defined(url_name: str) -> bool:
    try:
        reverse(url_name, args=[1] if url_name == "cardholder" else [])
    except NoReverseMatch:
        return False
    return True


@pytest.fixture
def site(db):
    return benchmark.generate(cardholders=200, events=2000, seed=3)


def test_the_generator_writes_the_counts_it_reports(site):
    assert site["cardholders"] == Cardholder.objects.count() == 200
    assert site["audit_events"] == AuditEvent.objects.count() == 2000
    assert site["keys"] == Key.objects.count()
    assert site["access_level_memberships"] == Cardholder.access_levels.through.objects.count()
    assert site["partitions"] == Partition.objects.count() == 5
    assert site["access_points"] == 200


def test_cardholders_have_names_from_the_lists_an_address_and_about_one_issued_key(site):
    holders = list(Cardholder.objects.annotate(issued=Count("keys", filter=Q_ISSUED)).order_by("id"))
    assert all(holder.last_name in sitegen.LAST_NAMES for holder in holders)
    assert all(holder.first_name in sitegen.FIRST_NAMES for holder in holders)
    fold = sitegen.fold
    assert [holder.email for holder in holders] == [
        f"{fold(holder.first_name)}.{fold(holder.last_name)}{n}@example.com" for n, holder in enumerate(holders, 1)
    ]
    assert {holder.issued for holder in holders} <= {0, 1}
    assert 180 <= sum(holder.issued for holder in holders) <= 200
    assert len({holder.partition_id for holder in holders}) == 5


def test_columns_the_generator_does_not_choose_get_their_model_defaults(site):
    holder = Cardholder.objects.order_by("id").first()
    assert (holder.audit_openings, holder.office, holder.notes, holder.key_revalidation_days) == (True, False, "", 0)
    assert timezone.is_aware(holder.created_at)
    assert set(Key.objects.values_list("revision", flat=True)) == {1}
    assert {json.dumps(detail) for detail in AuditEvent.objects.values_list("detail", flat=True)} == {"{}"}


def test_events_are_spread_over_the_past_year_in_time_order(site):
    moments = list(AuditEvent.objects.order_by("id").values_list("at", flat=True))
    assert moments == sorted(moments)
    now = timezone.now()
    assert now - dt.timedelta(days=366) <= moments[0] < now - dt.timedelta(days=300)
    assert now - dt.timedelta(days=60) <= moments[-1] <= now


def test_access_events_name_their_cardholder_and_key_and_other_events_none(site):
    keys = {}
    for holder_id, uid in Key.objects.filter(status="issued").values_list("cardholder_id", "uid"):
        keys[holder_id] = uid
    events = list(AuditEvent.objects.select_related("cardholder", "access_point"))
    granted = [event for event in events if event.kind == "access_granted"]
    denied = [event for event in events if event.kind == "access_denied"]
    others = [event for event in events if event.kind not in ("access_granted", "access_denied")]
    assert granted and denied and others
    assert all(event.reason == "granted" and event.cardholder is not None for event in granted)
    assert all(event.cardholder_name == str(event.cardholder) for event in granted)
    assert all(event.key_uid == keys.get(event.cardholder_id, "") for event in granted)
    assert {event.reason for event in denied} <= {reason for reason, _ in sitegen.DENIALS}
    assert all((event.cardholder_id, event.reason) == (None, "") for event in others)
    assert all(event.access_point_name == event.access_point.name for event in events)


def test_the_generator_refuses_a_database_that_holds_cardholders(db):
    make_cardholder()
    with pytest.raises(ValueError, match="already holds"):
        benchmark.generate(cardholders=10, events=10)


def test_measure_times_each_page_and_counts_its_queries_at_two_page_sizes(site, settings):
    settings.ROOT_URLCONF = "tests.simulation.bench_urls"

    result = benchmark.measure(requests=4, warmups=1)

    pages = result["pages"]
    assert result["missing_pages"] == ["cardholder"]
    assert pages["cardholder"] == {"missing": True}
    assert result["sample"]["surname"] == "Smith"
    assert pages["cardholder_search"]["url"] == "/cardholders/?q=Smith"
    assert pages["audit_trail_filtered"]["url"] == (
        f"/audit/?kind=access_denied&access_point={result['sample']['access_point']}"
    )
    for key in ("cardholders", "cardholder_search", "audit_trail", "audit_trail_filtered"):
        assert 0 < pages[key]["p50_ms"] <= pages[key]["p95_ms"] <= pages[key]["max_ms"]
        assert pages[key]["bytes"] > 0
    assert pages["cardholders"]["queries_per_page_10"] == pages["cardholders"]["queries_per_page_100"]
    assert pages["cardholders"]["queries_constant"] is True
    # One query per row: 90 more rows, 90 more queries.
    assert pages["audit_trail"]["queries_per_page_100"] - pages["audit_trail"]["queries_per_page_10"] == 90
    assert pages["audit_trail"]["queries_constant"] is False


def test_measure_logs_in_an_operator_of_all_partitions_who_is_not_a_superuser(site, settings):
    settings.ROOT_URLCONF = "tests.simulation.bench_urls"

    benchmark.measure(requests=1, warmups=0)

    operator = Operator.objects.get(username=benchmark.OPERATOR)
    assert not operator.is_superuser
    assert operator.operator_groups.get().all_partitions is True
    assert operator.has_perm("accesscontrol.view_cardholder") and operator.has_perm("accesscontrol.view_auditevent")
    assert not operator.has_perm("accesscontrol.change_cardholder")


def test_measure_stops_at_a_page_that_does_not_answer_200(site, settings):
    settings.ROOT_URLCONF = "tests.simulation.bench_refusing_urls"

    with pytest.raises(benchmark.PageFailed, match="answered 403"):
        benchmark.measure(requests=1, warmups=0)


def test_keep_refuses_to_generate_into_a_database_with_cardholders(db):
    make_cardholder()
    with pytest.raises(CommandError, match="already holds"):
        call_command("bench_web", "--keep", "--phase", "generate", stdout=io.StringIO())


@pytest.mark.slow
def test_the_command_prints_one_json_line_from_a_throwaway_database():
    out = io.StringIO()

    call_command(
        "bench_web", "--cardholders", "200", "--events", "2000", "--requests", "3", "--warmups", "1", stdout=out
    )

    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert (result["cardholders"], result["audit_events"], result["throwaway"]) == (200, 2000, True)
    assert (result["database"], result["requests_per_page"]) == ("sqlite", 3)
    assert result["cores"] >= 1 and result["python"].startswith("3.")
    for key, url_name in PAGES.items():
        if defined(url_name):
            assert result["pages"][key]["p95_ms"] > 0, key
            assert result["pages"][key]["queries_per_page_10"] > 0, key
        else:
            assert result["pages"][key] == {"missing": True}, key
