import re

from django.core.exceptions import ValidationError
from django.db import models

from accesscontrol.choices import CardholderKind, KeyKind, KeyStatus
from accesscontrol.models.partitions import PartitionedModel
from accesscontrol.photofiles import photo_storage, photo_version
from accesscontrol.pins import DIGEST_PURPOSE, INDEX_PURPOSE, hash_pin, pin_index, pin_matches
from core import vault

UID_PATTERN = re.compile(r"^[0-9A-F]{2,64}$")


class Cardholder(PartitionedModel):
    """A person who may open doors: staff, visitor or hotel guest (SALTO's "user")."""

    ext_id = models.CharField("external id", max_length=64, unique=True, null=True, blank=True)
    kind = models.CharField(max_length=16, choices=CardholderKind.choices, default=CardholderKind.STAFF)
    title = models.CharField(max_length=32, blank=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    phone_number = models.CharField(max_length=32, blank=True, help_text="E.164, for mobile keys.")
    department = models.CharField(max_length=100, blank=True)
    job_title = models.CharField(max_length=100, blank=True)
    activation = models.DateTimeField(null=True, blank=True, help_text="Access starts here; empty = at once.")
    expiration = models.DateTimeField(null=True, blank=True, help_text="Access ends here; empty = never.")
    # A keyed digest (accesscontrol/pins.py): the key is derived from the master key, so a dump reveals no PIN.
    pin_hash = models.CharField("PIN", max_length=96, blank=True, editable=False)
    # Finds the cardholder from a PIN typed alone at a keypad (accesscontrol/pins.py); unique, so no PIN is shared.
    pin_index = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    office = models.BooleanField(default=False, help_text="May put doors in office mode.")
    override_privacy = models.BooleanField(default=False, help_text="Opens rooms whose privacy latch is on.")
    override_lockdown = models.BooleanField(default=False, help_text="Opens doors during lockdown.")
    audit_openings = models.BooleanField(default=True, help_text="Openings are written to the audit trail.")
    use_anti_passback = models.BooleanField(default=False)
    extended_open_time = models.BooleanField(default=False, help_text="Doors stay open for their extended time.")
    banned = models.BooleanField(default=False, help_text="Refused everywhere while set.")
    key_revalidation_days = models.PositiveSmallIntegerField(
        default=0, help_text="Keys must be revalidated at an updater this often; 0 = never."
    )
    key_cancellable_through_blacklist = models.BooleanField(default=True)
    access_levels = models.ManyToManyField("accesscontrol.AccessLevel", blank=True, related_name="cardholders")
    notes = models.TextField(blank=True)
    # Written only through accesscontrol.photos (checked, resized, metadata stripped); the thumbnail sits beside it.
    photo = models.FileField(storage=photo_storage, max_length=200, blank=True, editable=False)
    photo_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [models.Index(fields=["last_name", "first_name"])]

    def __str__(self):
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def photo_version(self) -> str:
        return photo_version(self.photo.name)

    @property
    def has_pin(self) -> bool:
        return bool(self.pin_hash)

    def set_pin(self, pin: str | None) -> None:
        """Set (None: remove) the PIN: its keyed digest, and its index for PIN-only keypads."""
        self.pin_hash = hash_pin(vault.derive(DIGEST_PURPOSE), pin) if pin else ""
        self.pin_index = pin_index(vault.derive(INDEX_PURPOSE), pin) if pin else None

    def pin_taken(self, pin: str) -> bool:
        """Whether another cardholder has this PIN (PINs are unique: a PIN alone opens PIN-only doors)."""
        index = pin_index(vault.derive(INDEX_PURPOSE), pin)
        return Cardholder.objects.filter(pin_index=index).exclude(pk=self.pk).exists()

    def check_pin(self, pin: str) -> bool:
        return pin_matches(vault.derive(DIGEST_PURPOSE), self.pin_hash, pin)

    def clean(self):
        if self.activation and self.expiration and self.expiration <= self.activation:
            raise ValidationError({"expiration": "Expiration must come after activation."})


def normalize_uid(uid: str) -> str:
    return uid.replace(":", "").replace(" ", "").upper()


class Key(models.Model):
    """A credential: a card's UID, a mobile key's id. A cancelled key is blacklisted until it expires."""

    # PROTECT: a cardholder goes only through accesscontrol.actions.delete_cardholder, which cancels and
    # blacklists their keys first; a cascade would drop a live key without telling the offline locks.
    cardholder = models.ForeignKey(Cardholder, on_delete=models.PROTECT, related_name="keys")
    uid = models.CharField("UID", max_length=64, help_text="Card UID or mobile key id, in hex.")
    kind = models.CharField(max_length=16, choices=KeyKind.choices, default=KeyKind.CARD)
    status = models.CharField(max_length=16, choices=KeyStatus.choices, default=KeyStatus.ISSUED)
    revision = models.PositiveIntegerField(default=1, help_text="Rises each time the key's data is rewritten.")
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    issued_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    last_revalidated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["uid"], condition=models.Q(status=KeyStatus.ISSUED), name="key_one_issued_per_uid"
            ),
        ]
        indexes = [
            models.Index(fields=["uid"]),
            # Covers "which keys open doors now" (the dashboard's count, the list's "has a valid key")
            # without a lookup into the table per key.
            models.Index(fields=["status", "valid_until", "valid_from", "cardholder"], name="key_validity"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.uid}"

    def clean(self):
        self.uid = normalize_uid(self.uid or "")
        if not UID_PATTERN.match(self.uid):
            raise ValidationError({"uid": "A UID is 2 to 64 hexadecimal digits."})
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValidationError({"valid_until": "The end of validity must come after its start."})


class BlacklistEntry(models.Model):
    """A cancelled key that offline locks must refuse until ``until``.

    Its primary key is the entry's number: site-wide, rising by one per entry, so a
    lock or card that holds entries up to N lacks exactly those above N. An entry
    leaves the list once ``until`` has passed (the key would have expired anyway).
    """

    # SET_NULL: the entry outlives a deleted key; key_number and uid are what cards and locks use.
    key = models.ForeignKey(Key, null=True, on_delete=models.SET_NULL, related_name="blacklist_entries")
    key_number = models.PositiveBigIntegerField(help_text="The key's id, as cards and locks name it.")
    uid = models.CharField("UID", max_length=64)
    until = models.DateTimeField(help_text="Refused until then; the entry is dropped after it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "blacklist entries"
        indexes = [models.Index(fields=["until"], name="blacklist_until")]

    def __str__(self):
        return f"#{self.pk} {self.uid} until {self.until:%Y-%m-%d %H:%M}"
