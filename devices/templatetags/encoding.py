"""Template filters for encode jobs."""

from django import template

from devices.encoding import error_message, is_placeholder

register = template.Library()


@register.filter
def encode_error(code: str) -> str:
    """An encode job's error code in words."""
    return error_message(code) if code else ""


@register.filter
def placeholder_uid(uid: str) -> bool:
    """True for the UID a key carries until the card it is written on is known."""
    return is_placeholder(uid or "")
