from django.urls import path
from rest_framework.routers import DefaultRouter

from accesscontrol.api import hotel, views

router = DefaultRouter()
router.register("partitions", views.PartitionViewSet)
router.register("locations", views.LocationViewSet)
router.register("zones", views.ZoneViewSet)
router.register("access-points", views.AccessPointViewSet)
router.register("time-periods", views.TimePeriodViewSet)
router.register("calendars", views.CalendarViewSet)
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

urlpatterns = [
    path("site/", views.SiteSettingsView.as_view(), name="site-settings"),
    path("hotel/check-in/", hotel.CheckInView.as_view(), name="hotel-check-in"),
    path("hotel/copy/", hotel.CopyView.as_view(), name="hotel-copy"),
    path("hotel/modify/", hotel.ModifyView.as_view(), name="hotel-modify"),
    path("hotel/check-out/", hotel.CheckOutView.as_view(), name="hotel-check-out"),
    path("hotel/read-key/", hotel.ReadKeyView.as_view(), name="hotel-read-key"),
    path("hotel/rooms/", hotel.RoomListView.as_view(), name="hotel-rooms"),
    path("hotel/stays/", hotel.StayListView.as_view(), name="hotel-stays"),
    *router.urls,
]
