from django.db import models


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
