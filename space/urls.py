from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", include("accesscontrol.urls")),  # the operator web app; its dashboard is "/"
    path("", include("devices.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("accesscontrol.api.urls")),
    path("api/v1/", include("devices.api.urls")),
    path("api/v1/", include("integrations.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
