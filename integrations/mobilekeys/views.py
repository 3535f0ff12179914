"""The web app's mobile keys, on a cardholder's page: issue one, invite a phone, see which phone holds it.

The invitation's one-time code is shown once, on the page the invite answers
with (never stored, never in a redirect or a message); the guest's phone app
redeems it (docs/mobile-keys.md). Cancelling a mobile key is the normal key
cancel (the blacklist). Permissions are the API's: issuing needs ``add_key``,
inviting ``change_key``, in the cardholder's partition.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views import View

from accesscontrol.choices import KeyKind, KeyStatus
from accesscontrol.permissions import may_use_partition
from accesscontrol.views.base import VIA, OperatorPage
from accesscontrol.views.cardholders import cardholder_for
from accesscontrol.views.keys import key_for
from devices.carddata import CardTooBig
from integrations.mobilekeys import services


def readable(code: str) -> str:
    """The code in groups of four, as it is read out or typed (the phone app ignores the dashes)."""
    return "-".join(code[start : start + 4] for start in range(0, len(code), 4))


class MobileKeyIssueView(OperatorPage, View):
    permission_required = "accesscontrol.add_key"

    def post(self, request, pk):
        holder = cardholder_for(request, pk)
        if not may_use_partition(request.user, "accesscontrol.add_key", holder.partition_id):
            raise PermissionDenied("You may not issue keys to this cardholder.")
        try:
            mobile, _ = services.issue(holder, operator=request.user, via=VIA)
        except CardTooBig as error:
            messages.error(request, f"No mobile key issued: {error}")
        else:
            messages.success(request, f"Mobile key {mobile.key.uid} issued: invite a phone to put it on.")
        return redirect("cardholder", pk=holder.pk)


class PhoneInviteView(OperatorPage, View):
    permission_required = "accesscontrol.change_key"

    def post(self, request, pk):
        key = key_for(request, pk, "change")
        if key.kind != KeyKind.MOBILE or key.status != KeyStatus.ISSUED:
            messages.error(request, "Only an issued mobile key can be put on a phone.")
            return redirect("cardholder", pk=key.cardholder_id)
        enrolment, code = services.invite_key(key, operator=request.user, via=VIA)
        context = {
            "page_title": "Invite a phone",
            "key": key,
            "code": readable(code),
            "expires_at": enrolment.code_expires_at,
        }
        response = render(request, "mobilekeys/invitation.html", context)
        response["Cache-Control"] = "no-store"
        return response
