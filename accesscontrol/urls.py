"""The operator web app's URLs (the API is under /api/v1/, the admin under /admin/).

Each area's pages live in a module of ``accesscontrol.views``; the names here
are what ``accesscontrol.navigation`` and the templates link to.
"""

from django.urls import path

from accesscontrol.views import cardholders, dashboard, jobs, keys

urlpatterns = [
    # login, logout, account, two-factor: accesscontrol.views.login
    # access points, zones, locations, time periods, calendars, access levels: accesscontrol.views.places, .schedules
    # monitor, audit trail, system auditor, operators and groups: accesscontrol.views.monitor, .records, .operators
    # --- dashboard, cardholders, keys, jobs -------------------------------------------
    path("", dashboard.DashboardView.as_view(), name="dashboard"),
    path("cardholders/", cardholders.CardholderListView.as_view(), name="cardholders"),
    path("cardholders/new/", cardholders.CardholderCreateView.as_view(), name="cardholder_create"),
    path("cardholders/import/", cardholders.CardholderImportView.as_view(), name="cardholder_import"),
    path("cardholders/export/", cardholders.CardholderExportView.as_view(), name="cardholder_export"),
    path("cardholders/grant-level/", cardholders.CardholderBulkGrantView.as_view(), name="cardholder_bulk_grant"),
    path("cardholders/<int:pk>/", cardholders.CardholderDetailView.as_view(), name="cardholder"),
    path("cardholders/<int:pk>/edit/", cardholders.CardholderEditView.as_view(), name="cardholder_edit"),
    path(
        "cardholders/<int:pk>/deactivate/", cardholders.CardholderDeactivateView.as_view(), name="cardholder_deactivate"
    ),
    path("cardholders/<int:pk>/delete/", cardholders.CardholderDeleteView.as_view(), name="cardholder_delete"),
    path("cardholders/<int:pk>/pin/", cardholders.CardholderPinView.as_view(), name="cardholder_pin"),
    path("cardholders/<int:pk>/keys/", cardholders.CardholderKeyIssueView.as_view(), name="cardholder_key_issue"),
    path("cardholders/<int:pk>/levels/", cardholders.CardholderLevelGrantView.as_view(), name="cardholder_level_grant"),
    path(
        "cardholders/<int:pk>/levels/<int:level_pk>/remove/",
        cardholders.CardholderLevelRemoveView.as_view(),
        name="cardholder_level_remove",
    ),
    path(
        "cardholders/<int:pk>/permissions/",
        cardholders.CardholderPermissionAddView.as_view(),
        name="cardholder_permission_add",
    ),
    path(
        "cardholders/<int:pk>/permissions/<int:permission_pk>/remove/",
        cardholders.CardholderPermissionRemoveView.as_view(),
        name="cardholder_permission_remove",
    ),
    path("keys/", keys.KeyListView.as_view(), name="keys"),
    path("keys/new/", keys.KeyIssueView.as_view(), name="key_issue"),
    path("keys/<int:pk>/cancel/", keys.KeyCancelView.as_view(), name="key_cancel"),
    path("keys/<int:pk>/revalidate/", keys.KeyRevalidateView.as_view(), name="key_revalidate"),
    path("jobs/", jobs.JobListView.as_view(), name="jobs"),
    path("jobs/<int:pk>/", jobs.JobDetailView.as_view(), name="job"),
    path("jobs/<int:pk>/download/", jobs.JobDownloadView.as_view(), name="job_download"),
]
