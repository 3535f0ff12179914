import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from core import vault
from devices.choices import (
    BAUD_RATES,
    FACE_TERMINAL_ID,
    AlarmKind,
    CardFormat,
    CommandOp,
    CommandStatus,
    DeviceKind,
    EncodePurpose,
    EncodeStatus,
    ReaderDirection,
)

DEVICE_KEY_SIZE = 16


class Device(models.Model):
    """A piece of hardware Space talks to, commissioned with an id and a device key."""

    device_id = models.PositiveBigIntegerField(
        unique=True,
        validators=[MinValueValidator(1), MaxValueValidator(2**32 - 1)],
        help_text="The id the device sends in every frame (1 to 4294967295).",
    )
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=DeviceKind.choices)
    description = models.TextField(blank=True)
    station = models.CharField(
        max_length=16,
        unique=True,
        null=True,
        blank=True,
        help_text="An encoder's station code, as a PMS names it (FIAS KC/WS); empty for other devices.",
    )
    enabled = models.BooleanField(default=True, help_text="A disabled device's frames are dropped.")
    # The device key, sealed under the master key (core/vault.py); never in clear text here.
    key_sealed = models.BinaryField(editable=False, default=b"")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Live status, written by the device bridge.
    online = models.BooleanField(default=False, editable=False)
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    address = models.CharField(max_length=64, blank=True, editable=False, help_text="Source of its last frame.")
    firmware = models.CharField(max_length=64, blank=True, editable=False)
    battery = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    tamper = models.BooleanField(default=False, editable=False)
    door_states = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        # Unique when set: every device without a station shares NULL, not "".
        self.station = (self.station or "").strip() or None

    @property
    def key_purpose(self) -> str:
        return f"device-key:{self.device_id}"

    def set_key(self, key: bytes | None = None) -> bytes:
        """Seal ``key`` (16 bytes; a fresh random one when None) onto the device and return it (save() stores it)."""
        key = secrets.token_bytes(DEVICE_KEY_SIZE) if key is None else key
        if len(key) != DEVICE_KEY_SIZE:
            raise ValueError(f"A device key is {DEVICE_KEY_SIZE} bytes, not {len(key)}.")
        self.key_sealed = vault.seal(key, self.key_purpose)
        return key

    def key(self) -> bytes:
        return vault.unseal(self.key_sealed, self.key_purpose)

    @property
    def has_key(self) -> bool:
        return bool(self.key_sealed)


class DeviceDoor(models.Model):
    """A door a device drives, by its number on the device, and the access point it is."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="doors")
    number = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(2**31 - 1)])
    access_point = models.ForeignKey("accesscontrol.AccessPoint", on_delete=models.CASCADE, related_name="device_doors")
    # The door's wiring, for devices whose doors Space runs (OSDP readers and I/O modules); SDP/1 devices run
    # their own doors and ignore it.
    relay = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(255)], help_text="The lock relay's output number (0: the first)."
    )
    contact = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(255)], help_text="The door contact's input; empty: none."
    )
    rex = models.PositiveSmallIntegerField(
        "exit button",
        null=True,
        blank=True,
        validators=[MaxValueValidator(255)],
        help_text="The exit button's (request to exit) input; empty: none.",
    )
    contact_open_when_active = models.BooleanField(
        default=True, help_text="The contact input is active while the door is open (clear it for the opposite)."
    )

    class Meta:
        ordering = ["device", "number"]
        constraints = [
            models.UniqueConstraint(fields=["device", "number"], name="device_door_number_once"),
            models.UniqueConstraint(fields=["access_point"], name="access_point_on_one_device_door"),
        ]

    def __str__(self):
        return f"{self.device} door {self.number}"


class DeviceReader(models.Model):
    """A reader on a device (by its number there) and the access point a card presented to it asks to open."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="readers")
    number = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(2**31 - 1)])
    access_point = models.ForeignKey(
        "accesscontrol.AccessPoint", on_delete=models.CASCADE, related_name="device_readers"
    )
    direction = models.CharField(max_length=8, choices=ReaderDirection.choices, default="", blank=True)

    class Meta:
        ordering = ["device", "number"]
        constraints = [models.UniqueConstraint(fields=["device", "number"], name="device_reader_number_once")]

    def __str__(self):
        return f"{self.device} reader {self.number}"


class DeviceCommand(models.Model):
    """A command for one device, tracked from the request until the device's ``result``.

    Its primary key is the protocol's server-unique ``cmd`` number.
    """

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="commands")
    op = models.CharField(max_length=24, choices=CommandOp.choices)
    args = models.JSONField(default=dict, blank=True)
    access_point = models.ForeignKey(
        "accesscontrol.AccessPoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=CommandStatus.choices, default=CommandStatus.QUEUED)
    error = models.CharField(max_length=200, blank=True)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "device"], name="device_command_status")]

    def __str__(self):
        return f"#{self.pk} {self.op} on {self.device}"

    def clean(self):
        if not isinstance(self.args, dict):
            raise ValidationError({"args": "The arguments are a JSON object."})


class EncodeJob(models.Model):
    """Writing one key's card data on one encoder (Ethernet over SDP/1, or USB through a local bridge).

    ``data`` is the card file built when the job was made (devices/cards.py);
    ``progress`` (0-100) and ``status`` move as the encoder reports, until ``done``
    (with the UID of the card written) or ``failed`` with ``error`` (``no_card``,
    ``wrong_card_type``, ``encoder_offline``, ``timeout``, ...). A ``read`` job has no key: it
    reads the card presented and keeps its UID and data (``data``, ``card_uid``) once done.
    """

    key = models.ForeignKey(
        "accesscontrol.Key", null=True, blank=True, on_delete=models.CASCADE, related_name="encode_jobs"
    )
    encoder = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="encode_jobs")
    purpose = models.CharField(max_length=8, choices=EncodePurpose.choices, default=EncodePurpose.WRITE)
    data = models.BinaryField(editable=False)
    status = models.CharField(max_length=16, choices=EncodeStatus.choices, default=EncodeStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=200, blank=True)
    card_uid = models.CharField("UID written", max_length=64, blank=True)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "encoder"], name="encode_job_status")]

    def __str__(self):
        return f"encode #{self.pk} {self.key} on {self.encoder}"


class OsdpBus(models.Model):
    """An RS-485 line of OSDP readers and I/O modules, reached through a serial port or a serial-over-IP converter."""

    name = models.CharField(max_length=100, unique=True)
    port = models.CharField(
        max_length=200,
        help_text="A serial port or pyserial URL: /dev/ttyUSB0, socket://10.0.0.5:4001 (serial over IP), "
        "rfc2217://10.0.0.5:4001.",
    )
    baud = models.PositiveIntegerField(choices=BAUD_RATES, default=115200)
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    # Live status, written by the bus's service.
    online = models.BooleanField(default=False, editable=False, help_text="The line is open.")
    last_error = models.CharField(max_length=200, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "OSDP bus"

    def __str__(self):
        return self.name


class OsdpReader(models.Model):
    """Where an OSDP device (reader or I/O module) is on its bus, and what it reported of itself.

    Its secure channel key (SCBK) is the device's key (``Device.key()``), made by
    Space and sealed under the master key. A new reader is in install mode and
    answers the default key; on first contact Space gives it its own (KEYSET) and
    from then on refuses it in clear, unless ``allow_clear``.
    """

    device = models.OneToOneField(Device, on_delete=models.CASCADE, primary_key=True, related_name="osdp")
    bus = models.ForeignKey(OsdpBus, on_delete=models.PROTECT, related_name="readers")
    address = models.PositiveSmallIntegerField(validators=[MaxValueValidator(126)], help_text="0 to 126.")
    card_format = models.CharField(max_length=8, choices=CardFormat.choices, default=CardFormat.AUTO)
    allow_clear = models.BooleanField(
        "allow without secure channel",
        default=False,
        help_text="Use the reader in clear when it cannot set up a secure channel. Card numbers and PINs then "
        "cross the line readable: only for readers that cannot do better.",
    )
    # Reported by the reader, written by the bus's service.
    key_set_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="It took its own key.")
    secure = models.BooleanField(default=False, editable=False, help_text="Its secure channel is up.")
    vendor_code = models.CharField(max_length=8, blank=True, editable=False)
    model = models.CharField(max_length=16, blank=True, editable=False)
    serial_number = models.CharField(max_length=16, blank=True, editable=False)
    firmware = models.CharField(max_length=32, blank=True, editable=False)
    capabilities = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["bus", "address"]
        verbose_name = "OSDP reader"
        constraints = [models.UniqueConstraint(fields=["bus", "address"], name="osdp_address_once_per_bus")]

    def __str__(self):
        return f"{self.bus} #{self.address}"


class Alarm(models.Model):
    """A door or device alarm (forced, held open, tamper...) that stays on the monitor until acknowledged."""

    kind = models.CharField(max_length=16, choices=AlarmKind.choices)
    access_point = models.ForeignKey(
        "accesscontrol.AccessPoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms")
    raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True, help_text="The condition ended (the door closed).")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        indexes = [models.Index(fields=["acknowledged_at", "raised_at"], name="alarm_open")]
        permissions = [("acknowledge_alarm", "Can acknowledge alarms")]

    def __str__(self):
        return f"{self.get_kind_display()} at {self.access_point or self.device}"


def validate_terminal_id(value: str) -> None:
    if not FACE_TERMINAL_ID.fullmatch(value or ""):
        raise ValidationError("1 to 64 letters, digits, '-' and '_', starting with a letter or digit.")


class FaceTerminal(models.Model):
    """A face terminal (devices/face/): the MQTT id its certificate names, the door it guards and what it takes.

    Its :class:`Device` (kind ``face_terminal``) carries the name, the enabled switch and the live status.
    """

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="face_terminal")
    terminal_id = models.CharField(
        max_length=64,
        unique=True,
        validators=[validate_terminal_id],
        help_text="Its MQTT identity: the common name of its certificate (manage.py face_terminal ID).",
    )
    access_point = models.ForeignKey(
        "accesscontrol.AccessPoint", on_delete=models.PROTECT, related_name="face_terminals"
    )
    direction = models.CharField(max_length=8, choices=ReaderDirection.choices, default="", blank=True)
    face_only = models.BooleanField(default=True, help_text="A face alone opens (1:N among those allowed now).")
    card_and_face = models.BooleanField(default=True, help_text="A card, then the card holder's face (1:1).")
    pin_and_face = models.BooleanField(default=False, help_text="A PIN, then the PIN holder's face (1:1).")
    model_name = models.CharField(max_length=32, default="xs4face-v1", help_text="The terminal's face model.")
    min_quality = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Captures the terminal scores below this are refused (0 to 1).",
    )
    require_liveness = models.BooleanField(
        default=True, help_text="Refuse a capture the terminal did not find live (a photo, a screen, a mask)."
    )

    class Meta:
        ordering = ["terminal_id"]

    def __str__(self):
        return f"face terminal {self.terminal_id}"

    def clean(self):
        from accesscontrol.faces import FACE_MODELS

        if self.model_name not in FACE_MODELS:
            raise ValidationError({"model_name": f"Known face models: {', '.join(sorted(FACE_MODELS))}."})
        if not (self.face_only or self.card_and_face or self.pin_and_face):
            raise ValidationError("A face terminal takes at least one of face only, card + face, PIN + face.")

    @property
    def methods(self) -> list[str]:
        """What it takes, as requests name it (devices/face/messages.py)."""
        taken = (("face", self.face_only), ("card_face", self.card_and_face), ("pin_face", self.pin_and_face))
        return [name for name, on in taken if on]


class FaceEnrolment(models.Model):
    """An operator's request that a terminal capture a cardholder's face, followed until the template arrives."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Sent to the terminal"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    OPEN = (Status.PENDING, Status.SENT)
    # An enrolment is the cardholder's: it belongs to their partition (accesscontrol.permissions).
    partition_path = "cardholder__partition"

    cardholder = models.ForeignKey("accesscontrol.Cardholder", on_delete=models.CASCADE, related_name="face_enrolments")
    terminal = models.ForeignKey(FaceTerminal, on_delete=models.CASCADE, related_name="enrolments")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    template = models.ForeignKey(
        "accesscontrol.FaceTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status", "terminal"], name="face_enrolment_status")]
        # A terminal captures one face at a time (devices.actions.start_face_enrolment cancels the earlier one).
        constraints = [
            models.UniqueConstraint(
                fields=["terminal"],
                condition=models.Q(status__in=("pending", "sent")),
                name="one_open_face_enrolment_per_terminal",
            )
        ]

    def __str__(self):
        return f"face enrolment #{self.pk} of cardholder {self.cardholder_id} at {self.terminal.terminal_id}"


class LockState(models.Model):
    """What the server knows of an offline lock: what it was loaded with, and what cards and PPDs report."""

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="lock_state")
    config_revision = models.PositiveBigIntegerField(default=0, help_text="The configuration it runs (0: never).")
    blacklist_number = models.PositiveBigIntegerField(default=0, help_text="The newest blacklist entry it holds.")
    battery = models.PositiveSmallIntegerField(null=True, blank=True)
    events_pending = models.PositiveIntegerField(default=0)
    initialised_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True, help_text="Its newest status, from a card or a PPD.")
    collected_at = models.DateTimeField(null=True, blank=True, help_text="Its audit trail was last collected.")
    clock_set_at = models.DateTimeField(null=True, blank=True, help_text="A PPD last set its clock.")

    class Meta:
        # A PPD exports the site card key into locks: a power of its own, not part of changing devices.
        permissions = [("use_ppd", "Can load offline locks and collect their audit trails with a PPD")]

    def __str__(self):
        return f"{self.device} state"


@receiver([post_save, post_delete], sender=DeviceDoor)
@receiver([post_save, post_delete], sender=DeviceReader)
def _mapping_changed(sender, instance, **kwargs):
    # The device bridge reloads a device when its updated_at moves.
    Device.objects.filter(pk=instance.device_id).update(updated_at=timezone.now())
