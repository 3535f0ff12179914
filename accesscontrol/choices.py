from django.db import models


class CardholderKind(models.TextChoices):
    STAFF = "staff", "Staff"
    VISITOR = "visitor", "Visitor"
    GUEST = "guest", "Hotel guest"


class KeyKind(models.TextChoices):
    CARD = "card", "Card"
    MOBILE = "mobile", "Mobile key"
    PIN = "pin", "PIN only"
    FOB = "fob", "Fob"


class KeyStatus(models.TextChoices):
    ISSUED = "issued", "Issued"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class AccessPointKind(models.TextChoices):
    DOOR = "door", "Door"
    ROOM = "room", "Room"
    LOCKER = "locker", "Locker"
    ELEVATOR_FLOOR = "elevator_floor", "Elevator floor"


class Connection(models.TextChoices):
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"


class OpeningMode(models.TextChoices):
    STANDARD = "standard", "Standard"
    OFFICE = "office", "Office"
    TOGGLE = "toggle", "Toggle"
    TIMED = "timed", "Timed"
    OPEN = "open", "Open (unlocked)"
    LOCKED = "locked", "Locked"


class ModeSource(models.TextChoices):
    """Who put an access point in its opening mode."""

    CONFIGURED = "configured", "Its configuration"
    SCHEDULE = "schedule", "Its schedule of automatic changes"
    OPERATOR = "operator", "An operator"


class PassbackKind(models.TextChoices):
    """What anti-passback does to a cardholder entering a zone they are already inside."""

    HARD = "hard", "Hard: refuse"
    SOFT = "soft", "Soft: grant and raise an alarm"


class PresenceSource(models.TextChoices):
    ONLINE = "online", "An online door"
    OFFLINE = "offline", "An offline lock's audit trail"
    OPERATOR = "operator", "An operator"


class Direction(models.TextChoices):
    """Which way a reader lets people through, for anti-passback."""

    BOTH = "both", "Both ways"
    ENTRY = "entry", "Entry into its zones"
    EXIT = "exit", "Exit from its zones"


class DayType(models.TextChoices):
    """Day types a calendar assigns to dates; they override the weekday."""

    HOLIDAY = "holiday", "Holiday"
    SPECIAL1 = "special1", "Special day 1"
    SPECIAL2 = "special2", "Special day 2"


class AuditKind(models.TextChoices):
    ACCESS_GRANTED = "access_granted", "Access granted"
    ACCESS_DENIED = "access_denied", "Access denied"
    DOOR_OPENED = "door_opened", "Door opened"
    DOOR_CLOSED = "door_closed", "Door closed"
    DOOR_LEFT_OPEN = "door_left_open", "Door left open"
    DOOR_FORCED = "door_forced", "Door forced open"
    REMOTE_OPEN = "remote_open", "Opened remotely"
    MODE_CHANGED = "mode_changed", "Opening mode changed"
    EMERGENCY_OPEN = "emergency_open", "Emergency open"
    EMERGENCY_CLOSE = "emergency_close", "Emergency close (lockdown)"
    EMERGENCY_END = "emergency_end", "Emergency ended"
    PRIVACY_ON = "privacy_on", "Privacy on"
    PRIVACY_OFF = "privacy_off", "Privacy off"
    DEVICE_ONLINE = "device_online", "Device online"
    DEVICE_OFFLINE = "device_offline", "Device offline"
    TAMPER = "tamper", "Tamper alarm"
    BATTERY_LOW = "battery_low", "Battery low"
    KEY_UPDATED = "key_updated", "Key updated"
    KEY_ENCODED = "key_encoded", "Key written on an encoder"
    LOCK_UPDATED = "lock_updated", "Lock updated by a PPD"
    EXIT_REQUEST = "exit_request", "Exit button pressed"
    DOOR_RELEASED = "door_released", "Door released"
    DOOR_LOCKED = "door_locked", "Door locked"
    ALARM_ACKNOWLEDGED = "alarm_acknowledged", "Alarm acknowledged"
    KEYPAD_LOCKED = "keypad_locked", "Keypad locked after wrong PINs"
    POWER_FAILURE = "power_failure", "Power failure"
    POWER_RESTORED = "power_restored", "Power restored"
    TAMPER_CLEARED = "tamper_cleared", "Tamper cleared"
    READER_KEY_SET = "reader_key_set", "Reader given its own secure channel key"
    SECURE_CHANNEL_FAILED = "secure_channel_failed", "Secure channel could not be set up"
    ANTI_PASSBACK_VIOLATION = "anti_passback_violation", "Anti-passback violation (soft)"
    BACKUP_FAILED = "backup_failed", "Backup failed"
    BACKUP_OVERDUE = "backup_overdue", "Backup overdue"
    SYNC_HELD = "sync_held", "Cardholder sync held for an operator"
    SYNC_FAILED = "sync_failed", "Cardholder sync failed"


# The alarms among the audit events, kept longer than the rest (SPACE_AUDIT_KEEP_ALARM_DAYS,
# accesscontrol/retention.py): what raises an alarm, what clears it and its acknowledgement, so an
# alarm's whole story is kept and archived together. Every other kind is an access or door event.
ALARM_KINDS = frozenset(
    kind.value
    for kind in (
        AuditKind.DOOR_FORCED,
        AuditKind.DOOR_LEFT_OPEN,
        AuditKind.TAMPER,
        AuditKind.TAMPER_CLEARED,
        AuditKind.POWER_FAILURE,
        AuditKind.POWER_RESTORED,
        AuditKind.DEVICE_OFFLINE,
        AuditKind.SECURE_CHANNEL_FAILED,
        AuditKind.KEYPAD_LOCKED,
        AuditKind.ANTI_PASSBACK_VIOLATION,
        AuditKind.EMERGENCY_OPEN,
        AuditKind.EMERGENCY_CLOSE,
        AuditKind.EMERGENCY_END,
        AuditKind.ALARM_ACKNOWLEDGED,
        AuditKind.BACKUP_FAILED,
        AuditKind.BACKUP_OVERDUE,
        AuditKind.SYNC_HELD,
        AuditKind.SYNC_FAILED,
    )
)


class Decision(models.TextChoices):
    """The reasons the decision engine gives; stored on access audit events."""

    GRANTED = "granted", "Granted"
    UNKNOWN_KEY = "unknown_key", "Unknown key"
    BLACKLISTED = "blacklisted", "Key blacklisted"
    EXPIRED = "expired", "Expired"
    NOT_YET_VALID = "not_yet_valid", "Not yet valid"
    BANNED = "banned", "Cardholder banned"
    UNKNOWN_ACCESS_POINT = "unknown_access_point", "Unknown access point"
    NO_PERMISSION = "no_permission", "No permission for this access point"
    OUTSIDE_SCHEDULE = "outside_schedule", "Outside the permitted time"
    PIN_REQUIRED = "pin_required", "PIN required"
    WRONG_PIN = "wrong_pin", "Wrong PIN"
    LOCKDOWN = "lockdown", "Lockdown in force"
    PRIVACY = "privacy", "Privacy (do not disturb) in force"
    ANTI_PASSBACK = "anti_passback", "Anti-passback: already inside"
    ZONE_FULL = "zone_full", "Zone full: its occupancy limit is reached"
    DOOR_LOCKED = "door_locked", "Door locked by its opening mode"
    UNKNOWN_PIN = "unknown_pin", "Unknown PIN"
    PIN_NOT_ACCEPTED = "pin_not_accepted", "A PIN alone does not open this door"
    PIN_LOCKED_OUT = "pin_locked_out", "Keypad locked after wrong PINs"
    CARD_READ_ERROR = "card_read_error", "Card read error"
    # Data-on-card (offline locks, updaters): the card itself is refused.
    TAMPERED = "tampered", "Card data changed or forged"
    TRUNCATED = "truncated", "Card data truncated or unreadable"
    WRONG_SITE = "wrong_site", "Card of another site"
    UNSUPPORTED_VERSION = "unsupported_version", "Card data of an unknown version"
    REPLAYED = "replayed", "Mobile key replayed"
    # Face terminals (devices/face/): the face itself is refused, before or after the rules.
    UNKNOWN_CARDHOLDER = "unknown_cardholder", "Cardholder unknown or deactivated"
    FACE_NOT_RECOGNISED = "face_not_recognised", "Face not recognised among those allowed here"
    FACE_MISMATCH = "face_mismatch", "Face does not match the cardholder"
    NO_FACE_ENROLLED = "no_face_enrolled", "No face enrolled for the cardholder"
    LIVENESS_FAILED = "liveness_failed", "Liveness check failed at the terminal"
    LOW_QUALITY = "low_quality", "Face capture quality too low"
    METHOD_NOT_ACCEPTED = "method_not_accepted", "This way of identifying is not accepted here"


class StayStatus(models.TextChoices):
    IN = "in", "Checked in"
    OUT = "out", "Checked out"
