from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accesscontrol.views.login import admin_login, logout_view
from space import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("", include("accesscontrol.urls")),  # the operator web app; its dashboard is "/"
    path("", include("hotel.urls")),  # the front desk
    path("", include("devices.urls")),
    path("", include("integrations.mobilekeys.urls")),
    path("", include("integrations.hrfeeds.urls")),  # an HR feed's column map
    path("", include("integrations.ship.urls")),  # SHIP over HTTP(S): POST /ship/
    # The admin logs in and out through the web app's views (lockout, second factor, system auditor).
    path("admin/login/", admin_login),
    path("admin/logout/", logout_view),
    path("admin/", admin.site.urls),
    path("api/v1/", include("accesscontrol.api.urls")),
    path("api/v1/", include("hotel.api.urls")),
    path("api/v1/", include("devices.api.urls")),
    path("api/v1/", include("integrations.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
]

handler404 = "accesscontrol.api.exceptions.not_found"
