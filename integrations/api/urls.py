from django.urls import path
from rest_framework.routers import SimpleRouter

from integrations.api import views
from integrations.mobilekeys import api as mobilekeys

# A SimpleRouter: the API root view is accesscontrol's.
router = SimpleRouter()
router.register("webhooks", views.WebhookSubscriptionViewSet)
router.register(
    r"webhooks/(?P<subscription_pk>[0-9]+)/deliveries", views.WebhookDeliveryViewSet, basename="webhook-delivery"
)

router.register("event-streams", views.EventStreamViewSet)
router.register("mobile-keys", mobilekeys.MobileKeyViewSet, basename="mobile-key")

urlpatterns = [
    *router.urls,
    path("phone/enrol/", mobilekeys.PhoneEnrolView.as_view(), name="phone-enrol"),
    path("phone/keys/", mobilekeys.PhoneKeysView.as_view(), name="phone-keys"),
]
