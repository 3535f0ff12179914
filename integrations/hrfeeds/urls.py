"""The web app's HR feed pages (integrations.hrfeeds.views)."""

from django.urls import path

from integrations.hrfeeds import views

urlpatterns = [
    path("sources/<int:pk>/columns/", views.ColumnMapView.as_view(), name="hr_feed_columns"),
]
