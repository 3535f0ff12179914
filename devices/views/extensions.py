"""What devices add to the domain's pages (accesscontrol.extensions): keys written on encoders, device figures.

Registered by ``devices.apps`` when the app starts.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError

from accesscontrol import actions
from accesscontrol.views.base import VIA, client_address
from devices import encoding
from devices.forms import add_validation_errors
from devices.models import Device

# Door states the dashboard counts as alarms.
ALARM_DOOR_STATES = {"forced", "left_open"}


def issue_from_form(request, holder, form) -> bool:
    """Issue the key a valid form asks for, written on a card on its encoder if it names one.
    False (nothing issued, the reason on the form) when the encoder or the card data is unfit."""
    data = dict(form.cleaned_data)
    data.pop("cardholder", None)
    encoder = data.pop("encoder")
    address = client_address(request)
    if encoder is None:
        key = actions.issue_key(holder, operator=request.user, via=VIA, address=address, **data)
        messages.success(request, f"Key {key.uid} issued to {holder}.")
        return True
    try:
        encoding.issue_and_encode(holder, encoder, operator=request.user, via=VIA, address=address, **data)
    except ValidationError as error:
        add_validation_errors(form, error)
        return False
    messages.success(request, f"Key issued to {holder}: present the card to {encoder}.")
    return True


def cardholder_encode_jobs(holder, keys) -> dict:
    """The cardholder page's recent encode jobs (their progress panel)."""
    return {"encode_jobs": encoding.recent_jobs(holder)}


def device_stats(operator) -> dict:
    """The dashboard's device figures, for operators who may see devices."""
    if not operator.has_perm("devices.view_device"):
        return {}
    online = offline = doors_in_alarm = tampered = 0
    # Devices are counted in tens or hundreds, not millions: their live state is read in one pass.
    for is_online, door_states, tamper in Device.objects.filter(enabled=True).values_list(
        "online", "door_states", "tamper"
    ):
        online += is_online
        offline += not is_online
        tampered += tamper
        doors_in_alarm += sum(1 for state in (door_states or {}).values() if state in ALARM_DOOR_STATES)
    return {"devices_online": online, "devices_offline": offline, "doors_in_alarm": doors_in_alarm, "tamper": tampered}
