from django.db import models


class DeviceKind(models.TextChoices):
    CONTROL_UNIT = "control_unit", "Control unit"
    GATEWAY = "gateway", "Gateway"
    NODE = "node", "Node / repeater"
    ONLINE_LOCK = "online_lock", "Online lock"
    OFFLINE_LOCK = "offline_lock", "Offline lock"
    ENCODER = "encoder", "Encoder"
    UPDATER = "updater", "Updater (wall reader)"
    PPD = "ppd", "Portable programming device"
    FACE_TERMINAL = "face_terminal", "Face terminal"
