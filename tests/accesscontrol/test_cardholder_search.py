"""The cardholder search (accesscontrol/search.py): the fast paths find what the plain filter finds, the SQLite
index stays current whatever writes the table, the list counts up to a limit, and migration 0016 goes both ways."""

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accesscontrol import search
from accesscontrol.models import Cardholder
from accesscontrol.views import cardholders as cardholder_views
from tests.factories import make_cardholder, make_key, make_operator, make_partition

SQLITE = connection.vendor == "sqlite"
MIGRATION = "0016_cardholder_search"


def found(value: str, queryset=None) -> set[int]:
    queryset = Cardholder.objects.all() if queryset is None else queryset
    return set(search.search(queryset, value).values_list("pk", flat=True))


def reference(value: str) -> set[int]:
    """The plain filter: what the search means, without any index."""
    queryset = Cardholder.objects.all()
    if value.strip():
        queryset = queryset.filter(search.matches(value))
    return set(queryset.values_list("pk", flat=True))


def index_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rowid, last_name, first_name FROM accesscontrol_cardholder_search ORDER BY rowid")
        return [tuple(row) for row in cursor.fetchall()]


def table_rows() -> list[tuple]:
    return list(Cardholder.objects.order_by("pk").values_list("pk", "last_name", "first_name"))


# --- the meaning: the fast path against the plain filter --------------------------

# Letters in both cases, ones SQLite's LIKE does not fold (é, ö), LIKE's wildcards, a quote (the FTS query's),
# a space inside a name.
LETTERS = "amithsAMITHSéÉöÖ%_\"'- "
names = st.text(LETTERS, min_size=1, max_size=9)
people = st.lists(
    st.tuples(names, st.text(LETTERS, max_size=7), st.sampled_from(["", "smith@x.org", "Ami.t@x.org", "é%_@x.org"])),
    min_size=1,
    max_size=8,
)


@pytest.mark.django_db
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people, st.data())
def test_the_search_finds_what_the_plain_filter_finds(rows, data):
    with transaction.atomic():
        holders = Cardholder.objects.bulk_create(
            Cardholder(last_name=last, first_name=first, email=email, ext_id=f"E-{number}" if number % 2 else None)
            for number, (last, first, email) in enumerate(rows)
        )
        texts = [text for holder in holders for text in (holder.last_name, holder.first_name, holder.email)]
        texts += [holder.ext_id for holder in holders if holder.ext_id]
        part = st.sampled_from(texts).flatmap(
            lambda text: st.tuples(st.integers(0, len(text)), st.integers(0, len(text))).map(
                lambda ends: text[min(ends) : max(ends)]
            )
        )
        words = st.lists(part | st.text(LETTERS, max_size=6), min_size=1, max_size=3).map(" ".join)
        value = data.draw(part | words | st.text(LETTERS, max_size=8), label="value")

        assert found(value) == reference(value)
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_it_searches_names_emails_external_ids_and_key_uids():
    chidi = make_cardholder(last_name="Okafor", first_name="Chidi", email="c.okafor@example.org")
    maja = make_cardholder(last_name="Lindqvist", first_name="Maja", email="maja@example.org", ext_id="HR-0042")
    novak = make_cardholder(last_name="Novák", first_name="Ana")
    make_key(novak, uid="04A1B2C3")

    assert found("chidi oka") == {chidi.pk}
    assert found("OKAFOR") == {chidi.pk}
    assert found("okafor maja") == set()
    assert found("maja@") == {maja.pk}
    assert found("MAJA@EX") == {maja.pk}
    assert found("example") == set()  # the e-mail from its start only
    assert found("HR-0042") == {maja.pk}
    assert found("HR-004") == set()  # the external id exactly
    assert found("04:a1:b2:c3") == {novak.pk}
    assert found("Novák") == {novak.pk}
    assert found("  ") == {chidi.pk, maja.pk, novak.pk}


@pytest.mark.django_db
def test_the_api_searches_the_same_way():
    partition = make_partition()
    holder = make_cardholder(partition=partition, last_name="Okafor", first_name="Chidi", email="chidi@example.org")
    make_cardholder(partition=partition, last_name="Lindqvist")
    client = Client()
    client.force_login(make_operator("accesscontrol.view_cardholder", partitions=[partition]))

    def ids(**params):
        return [row["id"] for row in client.get("/api/v1/cardholders/", params).json()["results"]]

    assert ids(q="chidi oka") == [holder.pk]
    assert ids(q="chidi@") == [holder.pk]
    assert ids(name="oKa chi") == [holder.pk]
    assert ids(q="nobody") == []


@pytest.mark.skipif(not SQLITE, reason="the FTS5 index is SQLite's")
@pytest.mark.django_db
def test_on_sqlite_words_of_three_letters_go_through_the_index():
    assert search.index_ready(connection)
    assert search._candidates("default", ["Smi", "a"], "Smi a") is not None
    assert search._candidates("default", ["Li", "a"], "Li a") is None  # too short for trigrams: the table is read


# --- the index stays current ------------------------------------------------------


@pytest.mark.skipif(not SQLITE, reason="the FTS5 index is SQLite's")
@pytest.mark.django_db
def test_the_index_follows_every_way_of_writing_cardholders():
    created = Cardholder.objects.bulk_create(
        [Cardholder(last_name=f"Bulk{number}", first_name="Ann") for number in range(5)]
    )
    assert index_rows() == table_rows()
    assert found("bulk3") == {created[3].pk}

    for holder in created:
        holder.last_name = holder.last_name.replace("Bulk", "Batch")
    Cardholder.objects.bulk_update(created, ["last_name"])
    assert index_rows() == table_rows()
    assert found("bulk3") == set() and found("batch3") == {created[3].pk}

    Cardholder.objects.filter(pk=created[0].pk).update(first_name="Zelda")
    assert index_rows() == table_rows()
    assert found("zelda") == {created[0].pk}

    Cardholder.objects.filter(pk=created[1].pk).update(email="other@example.org")  # names unchanged
    assert index_rows() == table_rows()

    one = make_cardholder(last_name="Single", first_name="Saved")
    one.first_name = "Edited"
    one.save()
    assert index_rows() == table_rows()
    assert found("edited single") == {one.pk}

    with connection.cursor() as cursor:
        cursor.execute("UPDATE accesscontrol_cardholder SET last_name = 'Rawname' WHERE id = %s", [created[2].pk])
    assert index_rows() == table_rows()
    assert found("rawname") == {created[2].pk}

    one.delete()
    Cardholder.objects.filter(pk__in=[created[3].pk, created[4].pk]).delete()
    assert index_rows() == table_rows()
    assert found("batch") == {created[0].pk, created[1].pk}


@pytest.mark.skipif(not SQLITE, reason="the FTS5 index is SQLite's")
@pytest.mark.django_db
def test_without_its_triggers_the_index_is_not_used_and_repair_restores_it():
    # What a migration that rebuilds the cardholder table does on SQLite: its triggers are gone.
    with connection.cursor() as cursor:
        for name in search.TRIGGERS:
            cursor.execute(f"DROP TRIGGER {name}")
    late = make_cardholder(last_name="Latecomer")
    assert not search.index_ready(connection)
    assert found("latecomer") == {late.pk}  # the plain filter, not the stale index

    assert search.repair(connection)
    assert search.index_ready(connection)
    assert index_rows() == table_rows()
    assert search._candidates("default", ["latecomer"], "latecomer") is not None
    assert found("latecomer") == {late.pk}
    assert not search.repair(connection)


# --- counting and pages -------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [5, 15])  # page 1 past the counted ids; page 1 within them, page 2 past them
def test_a_search_counts_up_to_a_limit_and_still_pages(monkeypatch, limit):
    monkeypatch.setattr(cardholder_views, "SEARCH_COUNTED", limit)
    smiths = Cardholder.objects.bulk_create(
        [Cardholder(last_name="Smith", first_name=f"N{number:02}") for number in range(23)]
    )
    make_cardholder(last_name="Jones", first_name="Few")
    client = Client()
    client.force_login(make_operator(is_superuser=True))
    url = reverse("cardholders")

    def page(**params):
        response = client.get(url, {"q": "smith", "per_page": 10, **params})
        assert response.status_code == 200
        return response

    first = page()
    assert [holder.first_name for holder in first.context["page_obj"]] == [f"N{n:02}" for n in range(10)]
    assert f"more than {limit} cardholders" in first.content.decode()
    assert first.context["page_obj"].has_next() and not first.context["page_obj"].has_previous()

    second = page(page=2)
    assert [holder.first_name for holder in second.context["page_obj"]] == [f"N{n:02}" for n in range(10, 20)]
    assert second.context["page_obj"].has_next() and second.context["page_obj"].has_previous()

    third = page(page=3)
    assert [holder.first_name for holder in third.context["page_obj"]] == ["N20", "N21", "N22"]
    assert not third.context["page_obj"].has_next() and third.context["page_obj"].has_previous()

    past = page(page=40)  # past the end: counted after all, the last page
    assert past.context["page_obj"].number == 3
    assert "23 cardholders" in past.content.decode() and "Page 3 of 3" in past.content.decode()

    few = page(q="jones")
    assert "1 cardholders" in few.content.decode() and "more than" not in few.content.decode()
    assert page(page="x").context["page_obj"].number == 1
    assert page(page="99999999999999999999999").context["page_obj"].number == 3
    assert len(smiths) == 23


# --- the migration ------------------------------------------------------------------


def installed() -> bool | None:
    """On SQLite, whether the index is there; elsewhere the migration does nothing (None)."""
    return search.index_ready(connection) if SQLITE else None


def test_the_migration_goes_forwards_and_backwards(transactional_db):
    holder = make_cardholder(last_name="Okafor", first_name="Chidi", email="chidi@example.org")
    executor = MigrationExecutor(connection)
    before = [key for key in executor.loader.get_migration("accesscontrol", MIGRATION).dependencies]
    assert installed() in (True, None)
    try:
        executor.migrate(before)
        assert installed() in (False, None)
        assert found("chidi oka") == {holder.pk}  # the plain filter
        assert found("chidi@") == {holder.pk}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert installed() in (True, None)
    if SQLITE:
        assert index_rows() == table_rows()
        assert search._candidates("default", ["okafor"], "okafor") is not None
    assert found("chidi oka") == {holder.pk}
