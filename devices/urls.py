"""The web app's device pages (devices.views)."""

urlpatterns = []
