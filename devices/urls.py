"""The web app's device pages (devices.views) and the live monitor."""

from django.urls import path

from devices.views import devices as views
from devices.views import monitor

urlpatterns = [
    path("monitor/", monitor.MonitorView.as_view(), name="monitor"),
    path("monitor/command/", monitor.MonitorCommandView.as_view(), name="monitor_command"),
    path("monitor/commands/", monitor.MonitorCommandsView.as_view(), name="monitor_commands"),
    path("devices/", views.DeviceList.as_view(), name="devices"),
    path("devices/<int:pk>/", views.DeviceDetail.as_view(), name="device"),
    path("devices/<int:pk>/edit/", views.DeviceEdit.as_view(), name="device_edit"),
    path("offline-locks/", views.OfflineLockList.as_view(), name="offline_locks"),
    path("encode-jobs/<int:pk>/", views.EncodeJobPanel.as_view(), name="encode_job"),
]
