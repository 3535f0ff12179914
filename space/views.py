from django.shortcuts import render

from accesscontrol.models import SiteSettings


def home(request):
    """The landing page, until the operator web app takes over "/"."""
    site = SiteSettings.objects.filter(pk=1).first()
    return render(request, "home.html", {"site_name": site.name if site else "Space"})
