"""``manage.py commission_device``: register a device with its key, doors and readers; or give it a new key.

The key is printed once when the command generates it, and never when it was
given (``--key``): the operator has it already.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accesscontrol.models import AccessPoint
from devices import actions
from devices.choices import DeviceKind
from devices.models import DEVICE_KEY_SIZE, Device

VIA = "command"
# The option that gives a field, where the names differ.
OPTIONS = {"doors": "door", "readers": "door"}


def parse_key(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != DEVICE_KEY_SIZE:
        raise CommandError(f"--key is {DEVICE_KEY_SIZE * 2} hex digits (a {DEVICE_KEY_SIZE}-byte key).")
    return key


def find_access_point(reference: str) -> AccessPoint:
    """An access point by name, or else by id."""
    point = AccessPoint.objects.filter(name=reference).first()
    if point is None and reference.isdigit():
        point = AccessPoint.objects.filter(pk=int(reference)).first()
    if point is None:
        raise CommandError(f'There is no access point named "{reference}" or with that id.')
    return point


def parse_door(text: str) -> tuple[int, AccessPoint]:
    number, sep, reference = text.partition("=")
    if not sep or not number.strip().isdigit() or not reference.strip():
        raise CommandError(f'--door is NUMBER=ACCESS_POINT (a name or an id), not "{text}".')
    number = int(number)
    if not 1 <= number <= 2**31 - 1:
        raise CommandError(f"A door number is 1 to {2**31 - 1}, not {number}.")
    return number, find_access_point(reference.strip())


class Command(BaseCommand):
    help = (
        "Commission a device: its id, kind, name, key (printed once when generated) and the access points "
        "its doors drive (each --door also makes the reader of the same number read for that access point). "
        "With --rekey, give an existing device a new key instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--device-id", type=int, required=True, help="The id in the device's frames.")
        parser.add_argument("--kind", choices=DeviceKind.values, help="Required when commissioning.")
        parser.add_argument("--name", help="Required when commissioning.")
        parser.add_argument("--description", default="")
        parser.add_argument("--key", help=f"The device key, {DEVICE_KEY_SIZE * 2} hex digits; generated when absent.")
        parser.add_argument(
            "--door",
            action="append",
            default=[],
            metavar="NUMBER=ACCESS_POINT",
            help="Door NUMBER (and reader NUMBER) of the device is ACCESS_POINT, by name or id. Repeatable.",
        )
        parser.add_argument("--rekey", action="store_true", help="Give the existing device --device-id a new key.")

    def handle(self, *args, device_id, kind, name, description, key, door, rekey, **options):
        key = parse_key(key)
        if rekey:
            self.rekey(device_id, key, refused=[opt for opt, value in (("--kind", kind), ("--name", name)) if value])
            return
        if not kind or not name:
            raise CommandError("Commissioning needs --kind and --name.")
        doors = [parse_door(text) for text in door]
        device = Device(device_id=device_id, name=name, kind=kind, description=description)
        mappings = [{"number": number, "access_point": point} for number, point in doors]
        try:
            generated = actions.commission_device(
                device, key=key, doors=mappings, readers=mappings, operator=None, via=VIA
            )
        except ValidationError as error:
            raise CommandError(_describe(error)) from None
        mapped = "".join(f"\n  door {number}: {point}" for number, point in doors)
        self.stdout.write(
            f'Commissioned {device.get_kind_display().lower()} "{device}" (device id {device_id}).{mapped}'
        )
        if key is None:
            self.stdout.write(f"Device key (not shown again): {generated.hex()}")

    def rekey(self, device_id: int, key: bytes | None, refused: list[str]) -> None:
        if refused:
            raise CommandError(f"--rekey changes only the key; leave out {' and '.join(refused)}.")
        device = Device.objects.filter(device_id=device_id).first()
        if device is None:
            raise CommandError(f"There is no device with id {device_id}.")
        new_key = actions.rekey_device(device, key=key, operator=None, via=VIA)
        self.stdout.write(f'Gave "{device}" (device id {device_id}) a new key.')
        if key is None:
            self.stdout.write(f"Device key (not shown again): {new_key.hex()}")


def _describe(error: ValidationError) -> str:
    """The model's validation errors named by the options that gave the values."""
    if hasattr(error, "error_dict"):
        return " ".join(
            f"--{OPTIONS.get(name, name).replace('_', '-')}: {' '.join(messages)}"
            for name, messages in error.message_dict.items()
        )
    return " ".join(error.messages)
