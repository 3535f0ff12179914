from django.urls import path
from rest_framework.routers import DefaultRouter

from accesscontrol.api import views

router = DefaultRouter()
router.register("partitions", views.PartitionViewSet)
router.register("locations", views.LocationViewSet)
router.register("zones", views.ZoneViewSet)
router.register("access-points", views.AccessPointViewSet)
router.register("time-periods", views.TimePeriodViewSet)
router.register("calendars", views.CalendarViewSet)
router.register("mode-schedules", views.ModeScheduleViewSet)
router.register("presence", views.PresenceViewSet)
router.register("access-levels", views.AccessLevelViewSet)
router.register("cardholders", views.CardholderViewSet)
router.register("cardholder-permissions", views.CardholderPermissionViewSet)
router.register("keys", views.KeyViewSet)
router.register("audit-events", views.AuditEventViewSet)
router.register("system-audit", views.SystemAuditViewSet)
router.register("blacklist", views.BlacklistViewSet)
router.register("operators", views.OperatorViewSet)
router.register("operator-groups", views.OperatorGroupViewSet)
router.register("api-keys", views.ApiKeyViewSet)
router.register("cardholder-sources", views.CardholderSourceViewSet)
router.register("sync-runs", views.SyncRunViewSet)

urlpatterns = [
    path("site/", views.SiteSettingsView.as_view(), name="site-settings"),
    path("roll-call/", views.RollCallAreaList.as_view(), name="roll-call"),
    path("roll-call/<int:zone_id>/", views.RollCallPeopleList.as_view(), name="roll-call-area"),
    path("cardholders/<int:id>/photo/", views.CardholderPhotoView.as_view(), name="cardholder-photo"),
    path("cardholders/<int:id>/face/", views.CardholderFaceView.as_view(), name="cardholder-face"),
    path(
        "cardholders/<int:id>/face/consent/", views.CardholderFaceConsentView.as_view(), name="cardholder-face-consent"
    ),
    *router.urls,
]
