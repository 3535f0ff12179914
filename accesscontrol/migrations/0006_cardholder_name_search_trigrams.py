"""PostgreSQL only: a trigram index for the cardholder search (names and e-mail, any part, any case).

The web app's search is ``icontains`` on first and last name and ``istartswith`` on
e-mail, which PostgreSQL runs as ``UPPER(column::text) LIKE UPPER(pattern)``: this
index serves exactly those expressions. It needs the pg_trgm extension (a trusted
extension: a database owner may create it). Where it cannot be had, the search
still works, scanning the table, and the migration says so instead of failing.
Other databases get nothing.
"""

import logging

from django.db import migrations

logger = logging.getLogger(__name__)

INDEX = "cardholder_search_trgm"
CREATE = (
    f"CREATE INDEX IF NOT EXISTS {INDEX} ON accesscontrol_cardholder USING gin "
    "(UPPER(last_name::text) gin_trgm_ops, UPPER(first_name::text) gin_trgm_ops, UPPER(email::text) gin_trgm_ops)"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            cursor.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm' "
                "AND has_database_privilege(current_database(), 'CREATE')"
            )
            if cursor.fetchone() is None:
                logger.warning("pg_trgm is not available: the cardholder search will scan the table")
                return
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        cursor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("accesscontrol", "0005_people")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
