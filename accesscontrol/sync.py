"""Cardholders kept in line with an outside source of truth: a directory (LDAP, Active Directory) or an HR feed.

The business rules of a sync live here, once; every entrance (``manage.py sync_cardholders``, the
job behind the web app's buttons, the scheduled tick) calls :func:`run`.

A source's *kind* is registered by the app that can read it (``integrations`` registers ``ldap`` and
``hr_feed`` in its ``AppConfig.ready``): its reader returns a :class:`Snapshot` of :class:`Person`
records, everyone (a full read) or those changed since the cursor (an incremental read). The sync
then

1. **plans**: who is added, who changed and how (field by field), who left and why (gone from the
   source, blocked there, out of the synced groups), who came back, how many keys would be cancelled;
2. **holds** the run when it would deactivate more than the source's ``max_leaver_percent`` of its
   active cardholders, so a directory that answers empty never empties a site: an operator looks at
   the diff and approves it (the approving run applies only if it finds no more leavers than were
   approved);
3. **applies** in batches, each its own short transaction (devices keep writing meanwhile):
   creations and updates in bulk with one system-auditor row per batch, each leaver through
   :func:`accesscontrol.actions.deactivate_cardholder` (keys cancelled and blacklisted, its own rows).

A dry run (``dry_run=True``) stops after the plan: its :class:`SyncRun` holds the diff an operator
reviews before applying. Leavers are deactivated, never deleted: their history stays, and they
come back (reactivated, keys to be issued anew) if the source lists them again.
"""

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from accesscontrol import actions
from accesscontrol.choices import AuditKind, KeyKind, KeyStatus
from accesscontrol.events import record
from accesscontrol.models import (
    AccessLevel,
    Cardholder,
    CardholderSource,
    Job,
    Key,
    Partition,
    SourcedCardholder,
    SyncRun,
    SyncStatus,
    normalize_uid,
)
from accesscontrol.models.cardholders import UID_PATTERN

logger = logging.getLogger("space.sync")

VIA = "sync"
BATCH = 500
# Entries per list in a run's diff; the counts are always whole.
DIFF_LIMIT = 500
ERROR_LIMIT = 1000
# A run still "running" after this long lost its process.
STALE_AFTER = dt.timedelta(hours=2)
# A watched folder whose run failed is looked at again after this long (a bad file has been moved to failed/
# by then, so a corrected one is read within minutes; an unreadable folder is not tried every minute).
WATCH_RETRY = dt.timedelta(minutes=5)
# The cardholder fields a source manages (Person attribute = Cardholder field).
FIELDS = ("first_name", "last_name", "email", "phone_number", "department", "job_title", "activation", "expiration")


class SourceError(Exception):
    """The source cannot be used now (unreachable, a wrong base, a file that is not a table): nothing changes."""


class SyncBusy(Exception):
    """Another run of the same source is under way."""


@dataclass
class Person:
    key: str
    last_name: str
    first_name: str = ""
    email: str = ""
    phone_number: str = ""
    department: str = ""
    job_title: str = ""
    activation: dt.datetime | None = None
    expiration: dt.datetime | None = None
    blocked: bool = False
    groups: frozenset[str] = frozenset()
    card_uid: str = ""
    photo: bytes | None = None
    origin: str = ""

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass
class RowError:
    where: str
    field: str
    message: str
    key: str = ""

    def as_dict(self) -> dict:
        return {"where": self.where, "field": self.field, "message": self.message, "key": self.key}

    def __str__(self):
        return f"{self.where}, {self.field}: {self.message}" if self.field else f"{self.where}: {self.message}"


@dataclass
class Snapshot:
    people: list[Person]
    complete: bool
    present: set[str] | None = None
    memberships: dict[str, frozenset[str]] | None = None
    cursor: dict = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    description: str = ""
    finish: Callable[[bool], None] | None = None
    # The Person fields (of FIELDS) the source has at all: only those are written (None: all of them), so a
    # feed without an e-mail column leaves the e-mail addresses typed in Space alone.
    fields: frozenset[str] | None = None


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    read: Callable[..., Snapshot | None]
    validate: Callable[[dict], dict]
    describe: Callable[[CardholderSource], str] | None = None
    # Looked at every tick (a watched folder), not only every sync_minutes; a function of the source when only
    # some sources of the kind watch (an HR feed's folder does, its HTTPS or SFTP address does not).
    watch: bool | Callable[[CardholderSource], bool] = False

    def watches(self, source: CardholderSource) -> bool:
        return bool(self.watch(source) if callable(self.watch) else self.watch)


_KINDS: dict[str, Kind] = {}


def register_kind(
    name: str,
    *,
    label: str,
    read: Callable[..., Snapshot | None],
    validate: Callable[[dict], dict],
    describe: Callable[[CardholderSource], str] | None = None,
    watch: bool | Callable[[CardholderSource], bool] = False,
) -> None:
    """Make a kind of source available (called from an app's ``ready``; registering twice replaces)."""
    _KINDS[name] = Kind(name, label, read, validate, describe, watch)


def kinds() -> dict[str, Kind]:
    return dict(_KINDS)


def kind_of(source: CardholderSource) -> Kind:
    try:
        return _KINDS[source.kind]
    except KeyError:
        known = ", ".join(sorted(_KINDS))
        raise SourceError(f"No reader for sources of kind {source.kind!r} (known: {known}).") from None


def validate_source(source: CardholderSource) -> None:
    """Check a source's configuration (the admin's form calls it); raises ValidationError({field: message})."""
    if source.kind not in _KINDS:
        raise ValidationError({"kind": f"Choose one of: {', '.join(sorted(_KINDS)) or 'none registered'}."})
    errors = {}
    try:
        source.settings = _KINDS[source.kind].validate(dict(source.settings or {}))
    except ValidationError as error:
        errors.update(error.message_dict if hasattr(error, "error_dict") else {"settings": error.messages})
    try:
        source.group_map = clean_group_map(source.group_map)
    except ValidationError as error:
        errors["group_map"] = error.messages
    if not isinstance(source.scope_groups, list) or not all(
        isinstance(group, str) and group.strip() for group in source.scope_groups
    ):
        errors["scope_groups"] = ["A list of group names (or DNs)."]
    if errors:
        raise ValidationError(errors)


def clean_group_map(group_map) -> dict:
    """``{group: {"access_levels": [names], "partition": name}}`` with every name existing."""
    if not isinstance(group_map, dict):
        raise ValidationError('A JSON object: {"<group>": {"access_levels": ["<name>"], "partition": "<name>"}}.')
    levels = set(AccessLevel.objects.values_list("name", flat=True))
    partitions = set(Partition.objects.values_list("name", flat=True))
    problems, cleaned = [], {}
    for group, target in group_map.items():
        if not isinstance(target, dict) or set(target) - {"access_levels", "partition"}:
            problems.append(f"{group}: give access_levels (a list) and/or partition (a name).")
            continue
        names = target.get("access_levels") or []
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            problems.append(f"{group}: access_levels must be a list of names.")
            continue
        missing = sorted(set(names) - levels)
        if missing:
            problems.append(f"{group}: no access level named {', '.join(missing)}.")
        partition = target.get("partition") or ""
        if partition and partition not in partitions:
            problems.append(f"{group}: no partition named {partition}.")
        cleaned[group] = {"access_levels": sorted(set(names)), "partition": partition}
    if problems:
        raise ValidationError(problems)
    return cleaned


# --- the plan ----------------------------------------------------------------------------------------------


@dataclass
class Rules:
    """A source's group map resolved to ids: what each group gives, which levels the source manages."""

    levels: dict[str, set[int]]
    partitions: dict[str, int]
    managed_levels: set[int]
    scope: set[str]
    default_partition: int
    level_names: dict[int, str]
    partition_names: dict[int, str]
    # The cardholder fields the source manages (Snapshot.fields); the others are left as they are.
    fields: tuple[str, ...] = FIELDS

    @classmethod
    def of(cls, source: CardholderSource) -> "Rules":
        level_ids = dict(AccessLevel.objects.values_list("name", "id"))
        partition_ids = dict(Partition.objects.values_list("name", "id"))
        levels, partitions, missing = {}, {}, []
        for group, target in (source.group_map or {}).items():
            names = target.get("access_levels") or []
            missing += [name for name in names if name not in level_ids]
            levels[group] = {level_ids[name] for name in names if name in level_ids}
            partition = target.get("partition") or ""
            if partition:
                if partition not in partition_ids:
                    missing.append(f"partition {partition}")
                else:
                    partitions[group] = partition_ids[partition]
        if missing:
            # A renamed level would otherwise be taken away from everyone the group gives it to.
            raise SourceError(f"The group map names what does not exist: {', '.join(sorted(set(missing)))}.")
        return cls(
            levels=levels,
            partitions=partitions,
            managed_levels=set().union(*levels.values()) if levels else set(),
            scope=set(source.scope_groups or []),
            default_partition=source.default_partition_id,
            level_names={pk: name for name, pk in level_ids.items()},
            partition_names={pk: name for name, pk in partition_ids.items()},
        )

    def levels_for(self, groups: Iterable[str]) -> set[int]:
        return set().union(*(self.levels.get(group, set()) for group in groups))

    def partition_for(self, groups: Iterable[str]) -> int:
        for group in sorted(groups):
            if group in self.partitions:
                return self.partitions[group]
        return self.default_partition

    def in_scope(self, groups: Iterable[str]) -> bool:
        return not self.scope or bool(self.scope.intersection(groups))


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def digest(person: Person) -> str:
    """Of the fields the sync applies from ``person`` (groups and the photo are compared on their own)."""
    values = [getattr(person, name) for name in FIELDS[:6]]
    values += [_when(person.activation), _when(person.expiration), person.blocked]
    values.append(normalize_uid(person.card_uid))
    return hashlib.sha256(json.dumps(values, default=str).encode()).hexdigest()


def photo_digest(data: bytes | None) -> str:
    return hashlib.sha256(data).hexdigest() if data else ""


@dataclass
class Leaver:
    cardholder_id: int
    key: str
    reason: str  # gone | blocked | out_of_scope


@dataclass
class Plan:
    add: list[Person] = field(default_factory=list)
    adopt: list[tuple[int, Person]] = field(default_factory=list)  # an unlinked cardholder with ext_id = key
    update: list[tuple[int, Person]] = field(default_factory=list)
    regroup: list[tuple[int, str, frozenset[str]]] = field(default_factory=list)  # only the groups changed
    reactivate: list[tuple[int, Person]] = field(default_factory=list)
    leave: list[Leaver] = field(default_factory=list)
    photos: dict[str, bytes | None] = field(default_factory=dict)  # key -> new photo (None: removed)
    unchanged: int = 0
    skipped: int = 0  # new people blocked or out of scope: not created
    errors: list[RowError] = field(default_factory=list)
    read: int = 0


def plan(source: CardholderSource, snapshot: Snapshot, rules: Rules) -> Plan:
    """What applying ``snapshot`` would change; reads the links and nothing else of the cardholders."""
    result = Plan(errors=list(snapshot.errors), read=len(snapshot.people))
    links = {
        key: (holder_id, link_digest, link_photo, groups, left_at)
        for key, holder_id, link_digest, link_photo, groups, left_at in SourcedCardholder.objects.filter(
            source=source
        ).values_list("key", "cardholder_id", "digest", "photo_digest", "groups", "left_at")
    }
    people: dict[str, Person] = {}
    for person in snapshot.people:
        if person.key in people:
            result.errors.append(
                RowError(person.origin, "key", f"{person.key} is given twice; the first is used", person.key)
            )
            continue
        people[person.key] = person
    unlinked = {}
    new_keys = [key for key in people if key not in links]
    if new_keys:
        for start in range(0, len(new_keys), BATCH):
            chunk = new_keys[start : start + BATCH]
            unlinked.update(
                Cardholder.objects.filter(ext_id__in=chunk, source_link__isnull=True).values_list("ext_id", "id")
            )

    for key, person in list(people.items()):
        if person.activation and person.expiration and person.expiration <= person.activation:
            result.errors.append(RowError(person.origin, "expiration", "comes before the activation", key))
            del people[key]
            continue
        leaving = "blocked" if person.blocked else None if rules.in_scope(person.groups) else "out_of_scope"
        link = links.get(key)
        if link is None:
            if leaving:
                result.skipped += 1
            elif key in unlinked:
                result.adopt.append((unlinked[key], person))
                result.photos[key] = person.photo
            else:
                result.add.append(person)
                if person.photo:
                    result.photos[key] = person.photo
            continue
        holder_id, link_digest, link_photo, groups, left_at = link
        if leaving:
            if left_at is None:
                result.leave.append(Leaver(holder_id, key, leaving))
            else:
                result.unchanged += 1
            continue
        if left_at is not None:
            result.reactivate.append((holder_id, person))
        elif link_digest != digest(person) or sorted(person.groups) != sorted(groups):
            result.update.append((holder_id, person))
        else:
            result.unchanged += 1
        if person.photo is not None and photo_digest(person.photo) != link_photo:
            result.photos[key] = person.photo
        elif person.photo is None and link_photo and snapshot.complete:
            result.photos[key] = None

    spared = {error.key for error in result.errors if error.key}
    if snapshot.complete:
        present = set(people) | spared
    elif snapshot.present is not None:
        present = set(snapshot.present) | set(people) | spared
    else:
        present = None
    for key, (holder_id, _digest, _photo, groups, left_at) in links.items():
        if key in people or left_at is not None:
            continue
        if present is not None and key not in present:
            result.leave.append(Leaver(holder_id, key, "gone"))
        elif snapshot.memberships is not None and key in snapshot.memberships:
            now_in = snapshot.memberships[key]
            if not rules.in_scope(now_in):
                result.leave.append(Leaver(holder_id, key, "out_of_scope"))
            elif sorted(now_in) != sorted(groups):
                result.regroup.append((holder_id, key, frozenset(now_in)))
            else:
                result.unchanged += 1
    return result


def active_count(source: CardholderSource) -> int:
    return SourcedCardholder.objects.filter(source=source, left_at__isnull=True).count()


def over_limit(source: CardholderSource, leavers: int) -> bool:
    """Whether ``leavers`` deactivations are more than the source may make without an operator."""
    if leavers == 0:
        return False
    return leavers * 100 > source.max_leaver_percent * active_count(source)


# --- the diff an operator reads ------------------------------------------------------------------------------


def _value(value):
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    return value if value not in (None, "") else ""


def describe(plan_: Plan, rules: Rules) -> tuple[dict, dict]:
    """(counts, diff) of a plan: field-by-field changes, the leavers with their reasons and live keys."""

    def level_names(ids):
        return sorted(rules.level_names.get(pk, str(pk)) for pk in ids)

    holder_ids = [pk for pk, _ in plan_.update[:DIFF_LIMIT]] + [pk for pk, _ in plan_.reactivate[:DIFF_LIMIT]]
    holder_ids += [pk for pk, _key, _groups in plan_.regroup[:DIFF_LIMIT]] + [pk for pk, _ in plan_.adopt[:DIFF_LIMIT]]
    holder_ids += [leaver.cardholder_id for leaver in plan_.leave[:DIFF_LIMIT]]
    holders = Cardholder.objects.in_bulk(holder_ids)
    current_levels: dict[int, set[int]] = {}
    for holder_id, level_id in Cardholder.access_levels.through.objects.filter(
        cardholder_id__in=holder_ids
    ).values_list("cardholder_id", "accesslevel_id"):
        current_levels.setdefault(holder_id, set()).add(level_id)

    def changes(holder_id: int, person: Person | None, groups: frozenset[str]) -> dict:
        holder = holders.get(holder_id)
        if holder is None:
            return {}
        found = {}
        if person is not None:
            for name, after in _fields(person, rules.fields).items():
                before = getattr(holder, name)
                if before != after:
                    found[name] = [_value(before), _value(after)]
        have = current_levels.get(holder_id, set())
        want = (have - rules.managed_levels) | rules.levels_for(groups)
        if have != want:
            found["access_levels"] = [level_names(have), level_names(want)]
        partition = rules.partition_for(groups)
        if holder.partition_id != partition:
            found["partition"] = [
                rules.partition_names.get(holder.partition_id, ""),
                rules.partition_names.get(partition, ""),
            ]
        return found

    live_keys = (
        dict(
            Key.objects.filter(
                cardholder_id__in=[leaver.cardholder_id for leaver in plan_.leave], status__in=LIVE_KEY_STATUSES
            )
            .values("cardholder_id")
            .annotate(n=Count("id"))
            .values_list("cardholder_id", "n")
        )
        if plan_.leave
        else {}
    )
    counts = {
        "read": plan_.read,
        "added": len(plan_.add),
        "adopted": len(plan_.adopt),
        "changed": len(plan_.update) + len(plan_.regroup),
        "reactivated": len(plan_.reactivate),
        "left": len(plan_.leave),
        "keys_cancelled": sum(live_keys.values()),
        "photos": len(plan_.photos),
        "unchanged": plan_.unchanged,
        "skipped": plan_.skipped,
        "errors": len(plan_.errors),
    }
    diff = {
        "added": [
            {
                "key": person.key,
                "name": person.name,
                "partition": rules.partition_names.get(rules.partition_for(person.groups), ""),
                "access_levels": level_names(rules.levels_for(person.groups)),
            }
            for person in plan_.add[:DIFF_LIMIT]
        ],
        "adopted": [
            {"id": pk, "key": person.key, "name": person.name, "changes": changes(pk, person, person.groups)}
            for pk, person in plan_.adopt[:DIFF_LIMIT]
        ],
        "changed": [
            {"id": pk, "key": person.key, "name": person.name, "changes": changes(pk, person, person.groups)}
            for pk, person in plan_.update[:DIFF_LIMIT]
        ]
        + [
            {"id": pk, "key": key, "name": str(holders.get(pk, "")), "changes": changes(pk, None, groups)}
            for pk, key, groups in plan_.regroup[: max(0, DIFF_LIMIT - len(plan_.update))]
        ],
        "reactivated": [
            {"id": pk, "key": person.key, "name": person.name} for pk, person in plan_.reactivate[:DIFF_LIMIT]
        ],
        "left": [
            {
                "id": leaver.cardholder_id,
                "key": leaver.key,
                "name": str(holders.get(leaver.cardholder_id, "")),
                "reason": leaver.reason,
                "keys": live_keys.get(leaver.cardholder_id, 0),
            }
            for leaver in plan_.leave[:DIFF_LIMIT]
        ],
    }
    return counts, diff


# Keys a leaver holds that deactivation cancels (and blacklists): every one not cancelled yet.
LIVE_KEY_STATUSES = [status for status in KeyStatus.values if status != KeyStatus.CANCELLED]


# --- applying ----------------------------------------------------------------------------------------------


def write_rows(rows: list, names: list[str]) -> None:
    """Save ``names`` of each row, one UPDATE per row sent as one batch (executemany).

    Django's bulk_update builds a CASE WHEN per field and row; at 500 rows that costs seconds in
    Python where these statements take milliseconds.
    """
    if not rows or not names:
        return
    model = type(rows[0])
    fields = [model._meta.get_field(name) for name in names]
    columns = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    values = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields] + [row.pk] for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {columns} WHERE {pk} = %s", values)  # noqa: S608 (names only)


def _batches(items: list, size: int = BATCH):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _fields(person: Person, managed: Iterable[str] = FIELDS) -> dict:
    """The cardholder fields ``person`` sets: those the source manages (``Snapshot.fields``), fitted to the columns."""
    values = {}
    for name in managed:
        value = getattr(person, name)
        if name not in ("activation", "expiration"):
            value = (value or "").strip()[: Cardholder._meta.get_field(name).max_length]
        values[name] = value
    if "last_name" in values and not values["last_name"]:
        values["last_name"] = person.key[:100]
    return values


def _card(person: Person) -> str:
    uid = normalize_uid(person.card_uid or "")
    return uid if UID_PATTERN.match(uid) else ""


class Applier:
    """Applies a plan in batches, each in its own transaction, with the system auditor's rows."""

    def __init__(self, source: CardholderSource, rules: Rules, progress: "Progress", now: dt.datetime):
        self.source, self.rules, self.progress, self.now = source, rules, progress, now
        self.errors: list[RowError] = []
        self.keys_cancelled = 0
        self.keys_issued = 0

    def audit(self, action: str, detail: dict) -> None:
        actions.record_operator_action(
            None, action, self.source, via=VIA, detail={"source": self.source.name, **detail}
        )

    # New cardholders: rows, links, access levels and card keys in bulk.
    def add(self, people: list[Person]) -> None:
        Through = Cardholder.access_levels.through
        for chunk in _batches(people):
            with transaction.atomic():
                taken = set(
                    Cardholder.objects.filter(ext_id__in=[p.key for p in chunk if len(p.key) <= 64]).values_list(
                        "ext_id", flat=True
                    )
                )
                holders = [
                    Cardholder(
                        ext_id=person.key if len(person.key) <= 64 and person.key not in taken else None,
                        partition_id=self.rules.partition_for(person.groups),
                        **_fields(person, self.rules.fields),
                    )
                    for person in chunk
                ]
                Cardholder.objects.bulk_create(holders)
                cards = self._issue_cards(list(zip(holders, chunk, strict=True)))
                SourcedCardholder.objects.bulk_create(
                    SourcedCardholder(
                        source=self.source,
                        key=person.key,
                        cardholder=holder,
                        digest=digest(person),
                        groups=sorted(person.groups),
                        card_uid=cards.get(holder.pk, ""),
                        seen_at=self.now,
                    )
                    for person, holder in zip(chunk, holders, strict=True)
                )
                Through.objects.bulk_create(
                    Through(cardholder_id=holder.pk, accesslevel_id=level)
                    for person, holder in zip(chunk, holders, strict=True)
                    for level in sorted(self.rules.levels_for(person.groups))
                )
                self.audit(
                    "sync_add",
                    {
                        "cardholders": [
                            {"id": h.pk, "key": p.key, "name": p.name} for h, p in zip(holders, chunk, strict=True)
                        ]
                    },
                )
            self.progress.advance(len(chunk))

    def _issue_cards(self, pairs: list[tuple[Cardholder, Person]]) -> dict[int, str]:
        """Keys from the source's card numbers, for people that have one; a UID issued to another is an error.

        Returns cardholder id -> the UID they now hold from the source (for their links' ``card_uid``).
        """
        wanted = [(holder, person, _card(person)) for holder, person in pairs if person.card_uid]
        for _holder, person, uid in wanted:
            if not uid:
                self.errors.append(RowError(person.origin, "card_uid", f"{person.card_uid!r} is not a card UID (hex)"))
        wanted = [(holder, person, uid) for holder, person, uid in wanted if uid]
        if not wanted:
            return {}
        issued = dict(
            Key.objects.filter(uid__in=[uid for _h, _p, uid in wanted], status=KeyStatus.ISSUED).values_list(
                "uid", "cardholder_id"
            )
        )
        new_keys, links = [], []
        for holder, person, uid in wanted:
            if uid in issued:
                if issued[uid] != holder.pk:
                    self.errors.append(
                        RowError(person.origin, "card_uid", f"{uid} is issued to another cardholder", person.key)
                    )
                    continue
            else:
                issued[uid] = holder.pk
                new_keys.append(Key(cardholder_id=holder.pk, uid=uid, kind=KeyKind.CARD))
            links.append((holder.pk, uid))
        Key.objects.bulk_create(new_keys)
        self.keys_issued += len(new_keys)
        return dict(links)

    # Changed, adopted and returning cardholders.
    def update(self, items: list[tuple[int, Person]], *, action: str, adopt: bool = False) -> None:
        Through = Cardholder.access_levels.through
        names = [*self.rules.fields, "partition", "updated_at"]
        for chunk in _batches(items):
            with transaction.atomic():
                ids = [pk for pk, _ in chunk]
                holders = Cardholder.objects.select_for_update().in_bulk(ids)
                links = {link.cardholder_id: link for link in SourcedCardholder.objects.filter(cardholder_id__in=ids)}
                current: dict[int, set[int]] = {}
                for holder_id, level_id in Through.objects.filter(cardholder_id__in=ids).values_list(
                    "cardholder_id", "accesslevel_id"
                ):
                    current.setdefault(holder_id, set()).add(level_id)
                changed, add_levels, drop_levels, new_links, cards, details = [], [], [], [], [], []
                fields_changed, returning = {"updated_at"}, False
                for pk, person in chunk:
                    holder = holders.get(pk)
                    if holder is None:  # deleted meanwhile
                        continue
                    changes = {}
                    for name, value in _fields(person, self.rules.fields).items():
                        if getattr(holder, name) != value:
                            changes[name] = [_value(getattr(holder, name)), _value(value)]
                            setattr(holder, name, value)
                    partition = self.rules.partition_for(person.groups)
                    if holder.partition_id != partition:
                        changes["partition"] = [holder.partition_id, partition]
                        holder.partition_id = partition
                    have = current.get(pk, set())
                    want = (have - self.rules.managed_levels) | self.rules.levels_for(person.groups)
                    add_levels += [Through(cardholder_id=pk, accesslevel_id=level) for level in sorted(want - have)]
                    drop_levels += [(pk, level) for level in have - want]
                    if have != want:
                        changes["access_levels"] = [sorted(have), sorted(want)]
                    holder.updated_at = self.now
                    fields_changed.update(name for name in changes if name != "access_levels")
                    changed.append(holder)
                    link = links.get(pk)
                    if link is None:
                        link = SourcedCardholder(
                            source=self.source, key=person.key, cardholder=holder, seen_at=self.now
                        )
                        new_links.append(link)
                    link.digest, link.groups, link.seen_at = digest(person), sorted(person.groups), self.now
                    returning = returning or link.left_at is not None
                    link.left_at, link.left_reason = None, ""
                    if _card(person) != link.card_uid:
                        cards.append((holder, person, link.card_uid))
                    details.append({"id": pk, "key": person.key, "name": person.name, "changes": changes})
                write_rows(changed, [name for name in names if name in fields_changed])
                Through.objects.bulk_create(add_levels)
                for pk, level in drop_levels:
                    Through.objects.filter(cardholder_id=pk, accesslevel_id=level).delete()
                SourcedCardholder.objects.bulk_create(new_links)
                write_rows(
                    list(links.values()),
                    ["digest", "groups", "seen_at", *(["left_at", "left_reason"] if returning else [])],
                )
                for holder, person, old_uid in cards:
                    self._change_card(holder, person, old_uid)
                self.audit(action, {"cardholders": details})
            self.progress.advance(len(chunk))

    def _change_card(self, holder: Cardholder, person: Person, old_uid: str) -> None:
        if old_uid:
            for key in Key.objects.filter(cardholder=holder, uid=old_uid).exclude(status=KeyStatus.CANCELLED):
                actions.cancel_key(key, operator=None, via=VIA, at=self.now)
                self.keys_cancelled += 1
        held = self._issue_cards([(holder, person)]) if person.card_uid else {}
        SourcedCardholder.objects.filter(cardholder=holder).update(card_uid=held.get(holder.pk, ""))

    def regroup(self, items: list[tuple[int, str, frozenset[str]]]) -> None:
        """Only the groups changed (an incremental run saw it in the group entries): levels and partition."""
        Through = Cardholder.access_levels.through
        for chunk in _batches(items):
            with transaction.atomic():
                ids = [pk for pk, _key, _groups in chunk]
                holders = Cardholder.objects.select_for_update().in_bulk(ids)
                current: dict[int, set[int]] = {}
                for holder_id, level_id in Through.objects.filter(cardholder_id__in=ids).values_list(
                    "cardholder_id", "accesslevel_id"
                ):
                    current.setdefault(holder_id, set()).add(level_id)
                details, moved = [], []
                for pk, key, groups in chunk:
                    holder = holders.get(pk)
                    if holder is None:
                        continue
                    have = current.get(pk, set())
                    want = (have - self.rules.managed_levels) | self.rules.levels_for(groups)
                    Through.objects.bulk_create(Through(cardholder_id=pk, accesslevel_id=lv) for lv in want - have)
                    Through.objects.filter(cardholder_id=pk, accesslevel_id__in=have - want).delete()
                    changes = {"access_levels": [sorted(have), sorted(want)]} if have != want else {}
                    partition = self.rules.partition_for(groups)
                    if holder.partition_id != partition:
                        changes["partition"] = [holder.partition_id, partition]
                        holder.partition_id = partition
                        moved.append(holder)
                    SourcedCardholder.objects.filter(cardholder_id=pk).update(groups=sorted(groups), seen_at=self.now)
                    details.append({"id": pk, "key": key, "name": str(holder), "changes": changes})
                Cardholder.objects.bulk_update(moved, ["partition"])
                self.audit("sync_update", {"cardholders": details})
            self.progress.advance(len(chunk))

    def leave(self, leavers: list[Leaver]) -> None:
        """Each leaver through the action every entrance uses: keys cancelled and blacklisted, access ends."""
        for chunk in _batches(leavers, 100):
            with transaction.atomic():
                holders = Cardholder.objects.in_bulk([leaver.cardholder_id for leaver in chunk])
                for leaver in chunk:
                    holder = holders.get(leaver.cardholder_id)
                    if holder is None:
                        continue
                    self.keys_cancelled += holder.keys.exclude(status=KeyStatus.CANCELLED).count()
                    actions.deactivate_cardholder(holder, operator=None, via=VIA, at=self.now)
                    SourcedCardholder.objects.filter(cardholder_id=holder.pk).update(
                        left_at=self.now, left_reason=leaver.reason
                    )
                self.audit(
                    "sync_leave",
                    {
                        "cardholders": [
                            {"id": leaver.cardholder_id, "key": leaver.key, "reason": leaver.reason} for leaver in chunk
                        ]
                    },
                )
            self.progress.advance(len(chunk))

    def photos(self, photos: dict[str, bytes | None]) -> int:
        """The source's photos, each through accesscontrol.photos; a bad image is a row error, not a failure."""
        if not photos:
            return 0
        try:
            from accesscontrol import photos as photo_actions
        except ImportError:  # pragma: no cover - photos are part of the product
            return 0
        done = 0
        for chunk in _batches(list(photos.items()), 100):
            links = {
                link.key: link
                for link in SourcedCardholder.objects.select_related("cardholder").filter(
                    source=self.source, key__in=[key for key, _ in chunk]
                )
            }
            for key, data in chunk:
                link = links.get(key)
                if link is None:
                    continue
                try:
                    if data is None:
                        photo_actions.remove_photo(link.cardholder, operator=None, via=VIA)
                    else:
                        photo_actions.set_photo_from_source(link.cardholder, data)
                except photo_actions.PhotoError as error:
                    self.errors.append(RowError(key, "photo", str(error), key))
                    continue
                SourcedCardholder.objects.filter(pk=link.pk).update(photo_digest=photo_digest(data))
                done += 1
            self.progress.advance(len(chunk))
        return done


# --- a run ---------------------------------------------------------------------------------------------------


class Progress:
    """A run's progress: reading is the first half, applying the second (``job`` None: nothing is shown)."""

    def __init__(self, job_progress=None):
        self.job_progress = job_progress
        self.phase = 0  # 0 reading, 1 applying
        self.total = 0
        self.done = 0

    def set_total(self, total: int) -> None:
        self.total, self.done = max(total, 1), 0
        self._report()

    def advance(self, steps: int = 1, message: str | None = None) -> None:
        self.done += steps
        self._report(message)

    def applying(self, total: int) -> None:
        self.phase = 1
        self.set_total(total)

    def _report(self, message: str | None = None) -> None:
        if self.job_progress is None:
            return
        share = min(self.done, self.total) / self.total if self.total else 0
        percent = int(50 * self.phase + 50 * share)
        self.job_progress.total = 100
        # The job's own steps are percent points: advance by what was gained since the last report.
        self.job_progress.advance(
            percent - self.job_progress.done, message or ("Reading the source" if self.phase == 0 else "Applying")
        )


def needs_full(source: CardholderSource, now: dt.datetime) -> bool:
    return (
        not source.cursor
        or source.last_full_at is None
        or now - source.last_full_at >= dt.timedelta(hours=source.full_every_hours)
    )


def _claim(source: CardholderSource, *, dry_run: bool, full: bool, operator, job, approves, now) -> SyncRun:
    with transaction.atomic():
        CardholderSource.objects.select_for_update().filter(pk=source.pk).first()
        SyncRun.objects.filter(source=source, status=SyncStatus.RUNNING, started_at__lt=now - STALE_AFTER).update(
            status=SyncStatus.FAILED, finished_at=now, message="The process running it stopped before it finished."
        )
        if SyncRun.objects.filter(source=source, status=SyncStatus.RUNNING).exists():
            raise SyncBusy(f"A run of {source} is under way; try again when it ends.")
        return SyncRun.objects.create(
            source=source,
            job=job,
            operator=operator if getattr(operator, "is_authenticated", False) else None,
            started_at=now,
            dry_run=dry_run,
            full=full,
            approves=approves,
            approved_by=operator if approves is not None and getattr(operator, "is_authenticated", False) else None,
        )


def run(
    source: CardholderSource,
    *,
    dry_run: bool = False,
    full: bool | None = None,
    operator=None,
    job: Job | None = None,
    job_progress=None,
    approves: SyncRun | None = None,
    scheduled: bool = False,
    now: dt.datetime | None = None,
) -> SyncRun | None:
    """Read ``source`` and preview (``dry_run``), hold, or apply what it says; the run's row tells how it ended.

    Returns None only for a scheduled run whose source had nothing new (no row is kept for it).
    Raises SyncBusy when another run of the source is under way.
    """
    now = now or timezone.now()
    kind = kind_of(source)
    full = needs_full(source, now) if full is None else full
    row = _claim(source, dry_run=dry_run, full=full, operator=operator, job=job, approves=approves, now=now)
    progress = Progress(job_progress)
    snapshot = None
    try:
        snapshot = kind.read(source, full=full, progress=progress)
        if snapshot is None:
            if scheduled:
                row.delete()
                return None
            return _finish(row, SyncStatus.NOTHING, message="The source has nothing new.")
        row.description = snapshot.description[:300]
        rules = Rules.of(source)
        if snapshot.fields is not None:
            rules.fields = tuple(name for name in FIELDS if name in snapshot.fields or name == "last_name")
        plan_ = plan(source, snapshot, rules)
        counts, diff = describe(plan_, rules)
        row.counts, row.diff = counts, diff
        row.errors = [error.as_dict() for error in plan_.errors[:ERROR_LIMIT]]
        if dry_run:
            return _finish(row, SyncStatus.PREVIEWED, message=summary(counts, "would be"))
        allowed = approves.counts.get("left", 0) if approves is not None else None
        if over_limit(source, len(plan_.leave)) and (allowed is None or len(plan_.leave) > allowed):
            message = (
                f"{len(plan_.leave)} of {active_count(source)} cardholders would be deactivated, more than the "
                f"{source.max_leaver_percent}% this source may deactivate alone: nothing was changed. "
                "Check the source, then approve this run to apply it."
            )
            if allowed is not None:
                message = f"The approved run deactivated {allowed}; this one would deactivate more. " + message
            return _finish(row, SyncStatus.HELD, message=message)
        applier = Applier(source, rules, progress, now)
        progress.applying(
            len(plan_.add)
            + len(plan_.adopt)
            + len(plan_.update)
            + len(plan_.regroup)
            + len(plan_.reactivate)
            + len(plan_.leave)
            + len(plan_.photos)
        )
        applier.add(plan_.add)
        applier.update(plan_.adopt, action="sync_adopt")
        applier.update(plan_.update, action="sync_update")
        applier.regroup(plan_.regroup)
        applier.update(plan_.reactivate, action="sync_reactivate")
        applier.leave(plan_.leave)
        applier.photos(plan_.photos)
        counts.update(keys_cancelled=applier.keys_cancelled, keys_issued=applier.keys_issued)
        counts["errors"] += len(applier.errors)
        row.counts = counts
        row.errors = (row.errors + [error.as_dict() for error in applier.errors])[:ERROR_LIMIT]
        changes = {"cursor": snapshot.cursor, "last_run_at": now}
        if full:
            changes["last_full_at"] = now
        CardholderSource.objects.filter(pk=source.pk).update(**changes)
        return _finish(row, SyncStatus.APPLIED, message=summary(counts, "were"), applied=snapshot)
    except SourceError as error:
        return _finish(row, SyncStatus.FAILED, message=str(error), failed=snapshot)
    except Exception as error:
        logger.exception("Sync of %s failed", source)
        _finish(
            row, SyncStatus.FAILED, message=f"Failed unexpectedly: {type(error).__name__}: {error}", failed=snapshot
        )
        raise


def _finish(row: SyncRun, status: str, *, message: str, applied: Snapshot | None = None, failed=None) -> SyncRun:
    row.status, row.message, row.finished_at = status, message[:2000], timezone.now()
    with transaction.atomic():
        row.save()
        if status in (SyncStatus.HELD, SyncStatus.FAILED) and not row.dry_run:
            # An alarm, so the monitor, webhooks and the event stream tell someone a source needs them.
            record(
                kind=AuditKind.SYNC_HELD if status == SyncStatus.HELD else AuditKind.SYNC_FAILED,
                at=row.finished_at,
                detail={"source": row.source.name, "run": row.pk, "message": row.message[:500]},
            )
    done = applied or failed
    if done is not None and done.finish is not None:
        try:
            done.finish(applied is not None)
        except Exception:
            logger.exception("Finishing the read of %s failed", row.source)
    return row


def summary(counts: dict, verb: str) -> str:
    return (
        f"{counts.get('read', 0)} read: {counts.get('added', 0)} {verb} added, {counts.get('changed', 0)} changed, "
        f"{counts.get('reactivated', 0)} reactivated, {counts.get('left', 0)} deactivated "
        f"({counts.get('keys_cancelled', 0)} keys cancelled), {counts.get('errors', 0)} errors."
    )


def sync_job(job: Job, job_progress) -> dict:
    """The job behind the web app's Preview, Sync now and Approve (accesscontrol.jobs kind ``cardholder_sync``)."""
    from accesscontrol.jobs import JobError

    parameters = job.parameters
    source = CardholderSource.objects.filter(pk=parameters.get("source")).first()
    if source is None:
        raise JobError("The source no longer exists.")
    approves = SyncRun.objects.filter(pk=parameters.get("approves")).first() if parameters.get("approves") else None
    try:
        row = run(
            source,
            dry_run=bool(parameters.get("dry_run")),
            full=parameters.get("full"),
            operator=job.operator,
            job=job,
            job_progress=job_progress,
            approves=approves,
        )
    except (SyncBusy, SourceError) as error:
        raise JobError(str(error)) from None
    if row.status == SyncStatus.FAILED:
        raise JobError(row.message)
    return {"run": row.pk, "status": row.status, "message": row.message}


def held(source: CardholderSource) -> bool:
    """Whether the source's newest run is held for an operator (scheduled runs wait until it is dealt with)."""
    newest = SyncRun.objects.filter(source=source).exclude(dry_run=True).order_by("-started_at", "-id").first()
    return newest is not None and newest.status == SyncStatus.HELD


def due(source: CardholderSource, now: dt.datetime) -> bool:
    if not source.enabled or source.kind not in _KINDS or held(source):
        return False
    every = dt.timedelta(minutes=source.sync_minutes)
    if _KINDS[source.kind].watches(source):
        # A watched folder is looked at every minute; after a failure (an unreadable folder), once an interval.
        newest = SyncRun.objects.filter(source=source).order_by("-started_at", "-id").first()
        failed = newest is not None and newest.status == SyncStatus.FAILED
        return not failed or source.last_run_at is None or now - source.last_run_at >= WATCH_RETRY
    if source.sync_minutes == 0:
        return False
    return source.last_run_at is None or now - source.last_run_at >= every


def tick(now: dt.datetime | None = None) -> str:
    """The minute's work (runspace's ``sources`` service, beat's ``source-tick``): every due source is run."""
    now = now or timezone.now()
    done = []
    for source in CardholderSource.objects.filter(enabled=True).order_by("name"):
        if not due(source, now):
            continue
        try:
            row = run(source, scheduled=True, now=now)
        except SyncBusy:
            continue
        except Exception as error:  # one source's failure does not stop the others
            done.append(f"{source}: failed ({error})")
            continue
        if not _KINDS[source.kind].watches(source) or (row is not None and row.status == SyncStatus.FAILED):
            # Until the next interval, also after "nothing new" or a failure (not every minute).
            CardholderSource.objects.filter(pk=source.pk).update(last_run_at=now)
        if row is not None:
            done.append(f"{source}: {row.get_status_display().lower()}")
    return "; ".join(done) or "nothing due"
