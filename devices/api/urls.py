from django.urls import path
from rest_framework.routers import SimpleRouter

from devices.api import ppd, views

# A SimpleRouter: the API root view is accesscontrol's.
router = SimpleRouter()
router.register("devices", views.DeviceViewSet)
router.register("device-commands", views.DeviceCommandViewSet)
router.register("osdp-buses", views.OsdpBusViewSet)
router.register("osdp-readers", views.OsdpReaderViewSet)
router.register("alarms", views.AlarmViewSet)
router.register("face-terminals", views.FaceTerminalViewSet)
router.register("face-enrolments", views.FaceEnrolmentViewSet)

urlpatterns = [
    path("commands/", views.IssueCommandView.as_view(), name="issue-command"),
    path("keys/<int:pk>/encode/", views.EncodeKeyView.as_view(), name="key-encode"),
    path("encode-jobs/<int:pk>/", views.EncodeJobView.as_view(), name="encode-job"),
    *router.urls,
    path("ppd/locks/", ppd.LockListView.as_view(), name="ppd-locks"),
    path("ppd/locks/<int:pk>/config/", ppd.LockConfigView.as_view(), name="ppd-lock-config"),
    path("ppd/locks/<int:pk>/loaded/", ppd.LockLoadedView.as_view(), name="ppd-lock-loaded"),
    path("ppd/locks/<int:pk>/audit/", ppd.LockAuditView.as_view(), name="ppd-lock-audit"),
]
