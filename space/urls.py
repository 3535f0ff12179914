from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from space.views import home

urlpatterns = [
    path("", include("accesscontrol.urls")),
    path("", include("devices.urls")),
    path("", home, name="home"),  # until the web app's dashboard takes "/"
    path("admin/", admin.site.urls),
    path("api/v1/", include("accesscontrol.api.urls")),
    path("api/v1/", include("devices.api.urls")),
    path("api/v1/", include("integrations.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
