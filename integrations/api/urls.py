from rest_framework.routers import SimpleRouter

from integrations.api import views

# A SimpleRouter: the API root view is accesscontrol's.
router = SimpleRouter()
router.register("webhooks", views.WebhookSubscriptionViewSet)
router.register(
    r"webhooks/(?P<subscription_pk>[0-9]+)/deliveries", views.WebhookDeliveryViewSet, basename="webhook-delivery"
)

router.register("event-streams", views.EventStreamViewSet)

urlpatterns = router.urls
