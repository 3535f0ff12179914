"""The web app's device pages (devices.views), OSDP buses and readers, face terminals and enrolment, and the live
monitor with its alarms."""

from django.urls import path

from devices.views import devices as views
from devices.views import faces, monitor, osdp

urlpatterns = [
    path("monitor/", monitor.MonitorView.as_view(), name="monitor"),
    path("monitor/command/", monitor.MonitorCommandView.as_view(), name="monitor_command"),
    path("monitor/commands/", monitor.MonitorCommandsView.as_view(), name="monitor_commands"),
    path("monitor/alarms/", monitor.MonitorAlarmsView.as_view(), name="monitor_alarms"),
    path("monitor/roll-call/", monitor.MonitorRollCallView.as_view(), name="monitor_roll_call"),
    path("alarms/<int:pk>/acknowledge/", monitor.AcknowledgeAlarmView.as_view(), name="alarm_acknowledge"),
    path("devices/", views.DeviceList.as_view(), name="devices"),
    path("devices/<int:pk>/", views.DeviceDetail.as_view(), name="device"),
    path("devices/<int:pk>/edit/", views.DeviceEdit.as_view(), name="device_edit"),
    path("devices/<int:pk>/doors/<int:number>/wiring/", osdp.EditDoorWiring.as_view(), name="door_wiring_edit"),
    path("devices/<int:pk>/osdp/", osdp.EditOsdpReader.as_view(), name="osdp_reader_edit"),
    path("devices/<int:pk>/osdp/rekey/", osdp.RekeyOsdpReader.as_view(), name="osdp_reader_rekey"),
    path("osdp-buses/", osdp.OsdpBusList.as_view(), name="osdp_buses"),
    path("osdp-buses/add/", osdp.OsdpBusCreate.as_view(), name="osdp_bus_add"),
    path("osdp-buses/<int:pk>/", osdp.OsdpBusDetail.as_view(), name="osdp_bus"),
    path("osdp-buses/<int:pk>/edit/", osdp.OsdpBusEdit.as_view(), name="osdp_bus_edit"),
    path("osdp-readers/add/", osdp.CommissionOsdpReader.as_view(), name="osdp_reader_add"),
    path("face-terminals/", faces.FaceTerminalList.as_view(), name="face_terminals"),
    path("face-terminals/add/", faces.CommissionFaceTerminal.as_view(), name="face_terminal_add"),
    path("face-terminals/<int:pk>/edit/", faces.EditFaceTerminal.as_view(), name="face_terminal_edit"),
    path("cardholders/<int:pk>/face/enrol/", faces.StartFaceEnrolment.as_view(), name="face_enrolment_start"),
    path("face-enrolments/<int:pk>/cancel/", faces.CancelFaceEnrolment.as_view(), name="face_enrolment_cancel"),
    path("offline-locks/", views.OfflineLockList.as_view(), name="offline_locks"),
    path("encode-jobs/<int:pk>/", views.EncodeJobPanel.as_view(), name="encode_job"),
]
