import re

from django.db import models

# A face terminal's id is its certificate's common name, its MQTT user name and a topic level
# (devices/face/topics.py): no "/", "+", "#", and no "." (Space's own identity has one, so no terminal can take it).
FACE_TERMINAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class DeviceKind(models.TextChoices):
    CONTROL_UNIT = "control_unit", "Control unit"
    GATEWAY = "gateway", "Gateway"
    NODE = "node", "Node / repeater"
    ONLINE_LOCK = "online_lock", "Online lock"
    OFFLINE_LOCK = "offline_lock", "Offline lock"
    ENCODER = "encoder", "Encoder (Ethernet)"
    USB_ENCODER = "usb_encoder", "Encoder (USB, through a local bridge)"
    UPDATER = "updater", "Updater (wall reader)"
    PPD = "ppd", "Portable programming device"
    FACE_TERMINAL = "face_terminal", "Face terminal"
    OSDP_READER = "osdp_reader", "OSDP reader"
    OSDP_IO = "osdp_io", "OSDP I/O module"

    @classmethod
    def osdp(cls) -> tuple[str, ...]:
        """Kinds on OSDP buses (devices/osdp/): they speak no SDP/1, and their key is their secure channel key."""
        return (cls.OSDP_READER, cls.OSDP_IO)


class CommandOp(models.TextChoices):
    OPEN = "open", "Open (remote opening)"
    SET_MODE = "set_mode", "Set opening mode"
    EMERGENCY_OPEN = "emergency_open", "Emergency open"
    EMERGENCY_CLOSE = "emergency_close", "Emergency close (lockdown)"
    END_EMERGENCY = "end_emergency", "End emergency"
    SET_TIME = "set_time", "Set time"
    BLACKLIST = "blacklist", "Send blacklist"


class CommandStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"

    @classmethod
    def finished(cls) -> tuple[str, ...]:
        return (cls.SUCCEEDED, cls.FAILED, cls.EXPIRED)


class EncodeStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent to the encoder"
    WAITING_CARD = "waiting_card", "Waiting for a card"
    WRITING = "writing", "Writing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"

    @classmethod
    def finished(cls) -> tuple[str, ...]:
        return (cls.DONE, cls.FAILED)


class EncodePurpose(models.TextChoices):
    WRITE = "write", "Write a key"
    READ = "read", "Read the card presented"


class CardFormat(models.TextChoices):
    """How an OSDP reader's card bits are read (devices/osdp/cardformats.py, docs/card-formats.md)."""

    AUTO = "auto", "Any Wiegand format, by its length"
    H10301 = "h10301", "26-bit H10301"
    H10306 = "h10306", "34-bit H10306"
    C1K35 = "c1k35", "35-bit Corporate 1000"
    C1K48 = "c1k48", "48-bit Corporate 1000"
    H10302 = "h10302", "37-bit H10302"
    H10304 = "h10304", "37-bit H10304"
    RAW = "raw", "Card serial number (raw)"


class ReaderDirection(models.TextChoices):
    """Which way a reader lets people through; empty: as its access point says."""

    SAME = "", "As the access point"
    ENTRY = "entry", "Entry"
    EXIT = "exit", "Exit"


class AlarmKind(models.TextChoices):
    FORCED = "forced", "Door forced open"
    HELD_OPEN = "held_open", "Door held open"
    TAMPER = "tamper", "Tamper"
    OFFLINE = "offline", "Reader offline"
    POWER = "power", "Power failure"
    SECURE_CHANNEL = "secure_channel", "No secure channel"
    ANTI_PASSBACK = "anti_passback", "Anti-passback violation"


BAUD_RATES = [(rate, f"{rate:,} baud") for rate in (9600, 19200, 38400, 57600, 115200, 230400)]
