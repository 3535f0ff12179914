"""What every web page's frame needs: the site's name, the menu, the idle time before log-off."""

from django.conf import settings
from django.utils.functional import SimpleLazyObject

from accesscontrol.models import SiteSettings
from accesscontrol.navigation import menu_for


def _site_name() -> str:
    site = SiteSettings.objects.filter(pk=1).only("name").first()
    return site.name if site else "Space"


def frame(request) -> dict:
    operator = getattr(request, "user", None)
    signed_in = operator is not None and operator.is_authenticated
    return {
        "site_name": SimpleLazyObject(_site_name),
        "idle_seconds": settings.SPACE_SESSION_IDLE_SECONDS,
        "navigation": SimpleLazyObject(lambda: menu_for(operator, request.path)) if signed_in else [],
    }
