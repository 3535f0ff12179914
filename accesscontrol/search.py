"""The cardholder search: one meaning, found through an index where the database has one.

What a search ``value`` finds (the web app's search box, the API's ``?q=``):
every word of it in the last or the first name (any part, any case), or the
whole value as the start of the e-mail address, or the whole value as the
external id exactly, or, when it reads as a key's UID and a key has it, that
key's holders. :func:`matches` is that meaning as a plain filter; it is the
reference the fast paths are tested against, and it is what every database
without an index of its own (SQL Server) runs.

The fast paths only narrow the rows the plain filter is then evaluated on, so
they never change what is found:

- SQLite: an FTS5 table of last and first names with the ``trigram`` tokenizer
  (``accesscontrol_cardholder_search``; its rowid is the cardholder's id), kept
  current by triggers on the cardholder table, so ``bulk_create``,
  ``bulk_update``, ``update()`` and raw SQL keep it in step; and an index on
  ``lower(email)`` for the e-mail prefix. A word of three characters or more is
  a phrase of trigrams the index answers; shorter words are checked on the rows
  the longer ones found (a search of only short words scans the table, as
  before). Migration 0016 creates both; :func:`repair` puts the triggers back
  (and refills the table) when a later migration rebuilt the cardholder table,
  which drops its triggers on SQLite, and the search uses the index only while
  its triggers are there.
- PostgreSQL: the plain filter as it is, served by the ``pg_trgm`` index of
  migration 0006 on the upper-cased names and e-mail. (A B-tree index for the
  e-mail prefix was tried and left out: with it in the bitmap, PostgreSQL
  evaluated the whole condition twice on every matching row, and the search for
  the commonest surname got slower.)
"""

import logging

from django.db import connections, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL

from accesscontrol.models import Key, normalize_uid
from accesscontrol.models.cardholders import UID_PATTERN

logger = logging.getLogger(__name__)

TABLE = "accesscontrol_cardholder"
FTS = "accesscontrol_cardholder_search"
EMAIL_INDEX = "cardholder_email_lower"
# Plain text, not formatted: the names are the constants above.
TRIGGERS = {
    "cardholder_search_insert": (
        "CREATE TRIGGER IF NOT EXISTS cardholder_search_insert AFTER INSERT ON accesscontrol_cardholder BEGIN "
        "INSERT INTO accesscontrol_cardholder_search(rowid, last_name, first_name) "
        "VALUES (new.id, new.last_name, new.first_name); END"
    ),
    "cardholder_search_update": (
        "CREATE TRIGGER IF NOT EXISTS cardholder_search_update "
        "AFTER UPDATE OF id, last_name, first_name ON accesscontrol_cardholder "
        "WHEN old.id IS NOT new.id OR old.last_name IS NOT new.last_name OR old.first_name IS NOT new.first_name "
        "BEGIN DELETE FROM accesscontrol_cardholder_search WHERE rowid = old.id; "
        "INSERT INTO accesscontrol_cardholder_search(rowid, last_name, first_name) "
        "VALUES (new.id, new.last_name, new.first_name); END"
    ),
    "cardholder_search_delete": (
        "CREATE TRIGGER IF NOT EXISTS cardholder_search_delete AFTER DELETE ON accesscontrol_cardholder BEGIN "
        "DELETE FROM accesscontrol_cardholder_search WHERE rowid = old.id; END"
    ),
}
FILL = (
    "INSERT INTO accesscontrol_cardholder_search(rowid, last_name, first_name) "
    "SELECT id, last_name, first_name FROM accesscontrol_cardholder"
)
# The index's candidates: the names' phrases, then (for the whole search) the e-mail prefix and the external id.
# lower() is SQLite's (ASCII letters only), as LIKE's case folding is: the range holds every address LIKE
# 'value%' matches.
NAMES_SQL = "SELECT rowid FROM accesscontrol_cardholder_search WHERE accesscontrol_cardholder_search MATCH %s"
OTHERS_SQL = (
    " UNION ALL SELECT id FROM accesscontrol_cardholder WHERE lower(email) >= lower(%s)"
    " AND lower(email) < lower(%s) || char(1114111)"
    " UNION ALL SELECT id FROM accesscontrol_cardholder WHERE ext_id = %s"
)
# The fewest characters of a word the trigram index can answer.
TRIGRAM = 3


# --- the meaning -------------------------------------------------------------------


def name_matches(value: str) -> Q:
    """Every word of ``value`` in the last or the first name, any part, any case."""
    words = Q()
    for word in value.split():
        words &= Q(last_name__icontains=word) | Q(first_name__icontains=word)
    return words


def matches(value: str) -> Q:
    """The search's meaning without key UIDs, as a plain filter: the reference for the fast paths."""
    value = value.strip()
    return name_matches(value) | Q(email__istartswith=value) | Q(ext_id=value)


# --- the fast paths ----------------------------------------------------------------


def search(queryset, value: str):
    """``queryset`` narrowed to the cardholders the search ``value`` finds."""
    value = value.strip()
    if not value:
        return queryset
    uid = normalize_uid(value)
    if UID_PATTERN.match(uid):
        # A key's UID names its holders outright (one indexed lookup); a name that merely looks like hex
        # ("Abe") finds no key and is searched as a name below.
        holders = list(Key.objects.filter(uid=uid).values_list("cardholder_id", flat=True)[:100])
        if holders:
            return queryset.filter(pk__in=holders)
    found = matches(value)
    candidates = _candidates(queryset.db, value.split(), value)
    return queryset.filter(found) if candidates is None else queryset.filter(candidates, found)


def search_names(queryset, value: str):
    """``queryset`` narrowed to cardholders with every word of ``value`` in their names (the API's ``?name=``)."""
    words = value.split()
    if not words:
        return queryset
    candidates = _candidates(queryset.db, words, None)
    found = name_matches(value)
    return queryset.filter(found) if candidates is None else queryset.filter(candidates, found)


def _candidates(alias: str, words: list[str], whole: str | None) -> Q | None:
    """A superset of the rows the search finds, from the indexes (SQLite); None: no narrowing to offer.

    ``whole``: the whole value, also looked for as an e-mail prefix and an external id (None: names only).
    """
    connection = connections[alias]
    if connection.vendor != "sqlite":
        return None
    phrases = ['"' + word.replace('"', '""') + '"' for word in words if len(word) >= TRIGRAM]
    if not phrases or not index_ready(connection):
        return None
    sql, params = NAMES_SQL, [" AND ".join(phrases)]
    if whole is not None:
        sql, params = sql + OTHERS_SQL, [*params, whole, whole, whole]
    return Q(pk__in=RawSQL(sql, params))  # noqa: S611 (constant SQL, the values are parameters)


def index_ready(connection) -> bool:
    """Whether the SQLite search table is there with every trigger that keeps it current."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE (type = 'table' AND name = %s) "
            "OR (type = 'trigger' AND tbl_name = %s AND name IN (%s, %s, %s))",
            [FTS, TABLE, *TRIGGERS],
        )
        return cursor.fetchone()[0] == 1 + len(TRIGGERS)


# --- creating, repairing, dropping on SQLite (migration 0016, post_migrate) ---------


def install(connection) -> None:
    """Create the search's indexes on SQLite, filled from the cardholders there are (other databases: nothing)."""
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5(last_name, first_name, tokenize='trigram')"
        )
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {EMAIL_INDEX} ON {TABLE} (lower(email))")
        _refill(cursor)


def uninstall(connection) -> None:
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for name in TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
        cursor.execute(f"DROP TABLE IF EXISTS {FTS}")
        cursor.execute(f"DROP INDEX IF EXISTS {EMAIL_INDEX}")


def _refill(cursor) -> None:
    """The triggers (again) and the table's rows from the cardholders, in one go (inside the caller's transaction)."""
    for name in TRIGGERS:
        cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
    cursor.execute("DELETE FROM accesscontrol_cardholder_search")
    cursor.execute(FILL)
    for statement in TRIGGERS.values():
        cursor.execute(statement)


def repair(connection) -> bool:
    """After migrations: on SQLite, when a migration rebuilt the cardholder table (dropping its triggers and
    indexes), put them back and refill the search table. True if something was repaired."""
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger', 'index')")
        present = {row[0] for row in cursor.fetchall()}
        if FTS not in present or TABLE not in present:
            return False  # not installed (before 0016, or after it was reversed)
        repaired = False
        if EMAIL_INDEX not in present:
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {EMAIL_INDEX} ON {TABLE} (lower(email))")
            repaired = True
        if not present.issuperset(TRIGGERS):
            _refill(cursor)
            repaired = True
    if repaired:
        logger.warning("The cardholder search index was rebuilt: a migration had rebuilt the cardholder table")
    return repaired


def repair_after_migrate(sender, using="default", **kwargs) -> None:
    with transaction.atomic(using=using):
        repair(connections[using])
