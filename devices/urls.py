"""The web app's device pages (devices.views)."""

from django.urls import path

from devices import views

urlpatterns = [
    path("devices/", views.DeviceList.as_view(), name="devices"),
    path("devices/<int:pk>/", views.DeviceDetail.as_view(), name="device"),
    path("devices/<int:pk>/edit/", views.DeviceEdit.as_view(), name="device_edit"),
    path("offline-locks/", views.OfflineLockList.as_view(), name="offline_locks"),
    path("encode-jobs/<int:pk>/", views.EncodeJobPanel.as_view(), name="encode_job"),
]
