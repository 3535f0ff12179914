"""HR feeds: cardholders from a CSV or XLSX file that HR drops in a watched folder or publishes at an HTTPS or
SFTP address, through a column map saved per feed (docs/hr-feeds.md). The kind "hr_feed" of the sync core
(accesscontrol/sync.py), which plans, holds and applies what the file says.

- config.py: the feed's settings and their validation;
- table.py: a file's bytes as a header and rows (CSV or XLSX), no I/O;
- people.py: rows as people through the column map, a RowError for each bad field;
- locations.py: fetching the file from the folder, HTTPS or SFTP;
- reader.py: ``read_feed`` as the core calls it, and archiving the processed file.
"""


def register() -> None:
    from accesscontrol import sync
    from integrations.hrfeeds.config import validate_settings
    from integrations.hrfeeds.reader import describe, read_feed, watches

    sync.register_kind(
        "hr_feed",
        label="HR feed (CSV / XLSX)",
        read=read_feed,
        validate=validate_settings,
        describe=describe,
        watch=watches,
    )
