from django.urls import path
from rest_framework.routers import SimpleRouter

from devices.api import views

# A SimpleRouter: the API root view is accesscontrol's.
router = SimpleRouter()
router.register("devices", views.DeviceViewSet)
router.register("device-commands", views.DeviceCommandViewSet)

urlpatterns = [
    path("commands/", views.IssueCommandView.as_view(), name="issue-command"),
    path("keys/<int:pk>/encode/", views.EncodeKeyView.as_view(), name="key-encode"),
    path("encode-jobs/<int:pk>/", views.EncodeJobView.as_view(), name="encode-job"),
    *router.urls,
]
