"""The operator web app's URLs (the API is under /api/v1/, the admin under /admin/).

Each area's pages live in a module of ``accesscontrol.views``; the names here
are what ``accesscontrol.navigation`` and the templates link to.
"""

from django.urls import path

from accesscontrol.views import monitor, operators, records

urlpatterns = [
    # login, logout, account, two-factor: accesscontrol.views.login
    # dashboard, cardholders, keys, jobs: accesscontrol.views.people, accesscontrol.views.jobs
    # access points, zones, locations, time periods, calendars, access levels: accesscontrol.views.places, .schedules
    # monitor, audit trail, system auditor, operators and groups: accesscontrol.views.monitor, .records, .operators
    path("monitor/", monitor.MonitorView.as_view(), name="monitor"),
    path("monitor/command/", monitor.MonitorCommandView.as_view(), name="monitor_command"),
    path("monitor/commands/", monitor.MonitorCommandsView.as_view(), name="monitor_commands"),
    path("audit/", records.AuditTrailView.as_view(), name="audit_trail"),
    path("audit/export.csv", records.AuditTrailExportView.as_view(), name="audit_trail_export"),
    path("system-audit/", records.SystemAuditView.as_view(), name="system_audit"),
    path("system-audit/export.csv", records.SystemAuditExportView.as_view(), name="system_audit_export"),
    path("operators/", operators.OperatorListView.as_view(), name="operators"),
    path("operators/new/", operators.OperatorCreateView.as_view(), name="operator_create"),
    path("operators/<int:pk>/", operators.OperatorDetailView.as_view(), name="operator"),
    path("operators/<int:pk>/edit/", operators.OperatorEditView.as_view(), name="operator_edit"),
    path("operator-groups/", operators.GroupListView.as_view(), name="operator_groups"),
    path("operator-groups/new/", operators.GroupCreateView.as_view(), name="operator_group_create"),
    path("operator-groups/<int:pk>/", operators.GroupDetailView.as_view(), name="operator_group"),
    path("operator-groups/<int:pk>/edit/", operators.GroupEditView.as_view(), name="operator_group_edit"),
]
