"""``manage.py commission_device``: register a device with its key, doors and readers; or give it a new key.

The key is printed once when the command generates it, and never when it was
given (``--key``): the operator has it already.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accesscontrol.actions import record_operator_action
from accesscontrol.models import AccessPoint
from devices import commands
from devices.choices import DeviceKind
from devices.models import DEVICE_KEY_SIZE, Device, DeviceDoor, DeviceReader

VIA = "command"


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
        self.check_doors(doors)
        device = Device(device_id=device_id, name=name, kind=kind, description=description)
        try:
            device.full_clean()
        except ValidationError as error:
            raise CommandError(_describe(error)) from None
        with transaction.atomic():
            generated = device.set_key(key)
            device.save()
            for number, point in doors:
                DeviceDoor.objects.create(device=device, number=number, access_point=point)
                DeviceReader.objects.create(device=device, number=number, access_point=point)
            detail = {
                "doors": {str(number): point.pk for number, point in doors},
                "key": "given" if key else "generated",
            }
            record_operator_action(None, "commission_device", device, via=VIA, detail=detail)
        mapped = "".join(f"\n  door {number}: {point}" for number, point in doors)
        self.stdout.write(
            f'Commissioned {device.get_kind_display().lower()} "{device}" (device id {device_id}).{mapped}'
        )
        if key is None:
            self.stdout.write(f"Device key (not shown again): {generated.hex()}")

    def check_doors(self, doors: list[tuple[int, AccessPoint]]) -> None:
        numbers = [number for number, _ in doors]
        if len(numbers) != len(set(numbers)):
            raise CommandError("Each door number may appear once.")
        points = [point for _, point in doors]
        if len(points) != len(set(points)):
            raise CommandError("An access point is driven by one door only.")
        taken = DeviceDoor.objects.filter(access_point__in=points).select_related("device", "access_point").first()
        if taken is not None:
            raise CommandError(f'"{taken.access_point}" is door {taken.number} of "{taken.device}" already.')

    def rekey(self, device_id: int, key: bytes | None, refused: list[str]) -> None:
        if refused:
            raise CommandError(f"--rekey changes only the key; leave out {' and '.join(refused)}.")
        device = Device.objects.filter(device_id=device_id).first()
        if device is None:
            raise CommandError(f"There is no device with id {device_id}.")
        new_key = commands.rekey(device, key=key, operator=None, via=VIA)
        self.stdout.write(f'Gave "{device}" (device id {device_id}) a new key.')
        if key is None:
            self.stdout.write(f"Device key (not shown again): {new_key.hex()}")


def _describe(error: ValidationError) -> str:
    """The model's validation errors named by the options that gave the values."""
    if hasattr(error, "error_dict"):
        return " ".join(
            f"--{name.replace('_', '-')}: {' '.join(messages)}" for name, messages in error.message_dict.items()
        )
    return " ".join(error.messages)
