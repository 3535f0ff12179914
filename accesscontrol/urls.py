"""The operator web app's URLs (the API is under /api/v1/, the admin under /admin/).

Each area's pages live in a module of ``accesscontrol.views``; the names here
are what ``accesscontrol.navigation`` and the templates link to.
"""

from django.urls import path

from accesscontrol.views import (
    access_levels,
    backups,
    blacklist,
    cardholders,
    dashboard,
    jobs,
    keys,
    login,
    operators,
    places,
    presence,
    records,
    schedules,
    sources,
)

urlpatterns = [
    path("login/", login.login_view, name="login"),
    path("login/code/", login.login_otp_view, name="login_otp"),
    path("logout/", login.logout_view, name="logout"),
    path("session/keepalive/", login.session_keepalive, name="session_keepalive"),
    path("account/", login.account_view, name="account"),
    path("account/two-factor/", login.two_factor_enrol_view, name="account_two_factor"),
    # login, logout, account, two-factor: accesscontrol.views.login
    # dashboard, cardholders, keys, jobs: accesscontrol.views.people, accesscontrol.views.jobs
    # audit trail, system auditor, operators and groups: accesscontrol.views.records, .operators (monitor: devices.urls)
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
    # --- access points, zones, locations: accesscontrol.views.places
    path("access-points/", places.AccessPointList.as_view(), name="access_points"),
    path("access-points/new/", places.AccessPointCreate.as_view(), name="access_point_add"),
    path("access-points/<int:pk>/", places.AccessPointDetail.as_view(), name="access_point"),
    path("access-points/<int:pk>/edit/", places.AccessPointEdit.as_view(), name="access_point_edit"),
    path("access-points/<int:pk>/delete/", places.AccessPointDelete.as_view(), name="access_point_delete"),
    path(
        "access-points/<int:pk>/who-may-open/",
        places.AccessPointWhoMayOpen.as_view(),
        name="access_point_who_may_open",
    ),
    path("zones/", places.ZoneList.as_view(), name="zones"),
    path("zones/new/", places.ZoneCreate.as_view(), name="zone_add"),
    path("zones/<int:pk>/", places.ZoneDetail.as_view(), name="zone"),
    path("zones/<int:pk>/edit/", places.ZoneEdit.as_view(), name="zone_edit"),
    path("zones/<int:pk>/delete/", places.ZoneDelete.as_view(), name="zone_delete"),
    path("zones/<int:pk>/access-points/", places.ZoneMembers.as_view(), name="zone_members"),
    path("zones/<int:pk>/forgive/", presence.ZoneForgiveView.as_view(), name="zone_forgive"),
    path("zones/<int:pk>/occupancy/", presence.ZoneOccupancyView.as_view(), name="zone_occupancy"),
    # --- roll-call and the muster report: accesscontrol.views.presence
    path("roll-call/", presence.RollCallView.as_view(), name="roll_call"),
    path("roll-call/<int:pk>/", presence.RollCallAreaView.as_view(), name="roll_call_area"),
    path("muster/", presence.MusterReportView.as_view(), name="muster_report"),
    path("muster/report.csv", presence.MusterCsvView.as_view(), name="muster_report_csv"),
    path("muster/report.pdf", presence.MusterPdfView.as_view(), name="muster_report_pdf"),
    path("locations/", places.LocationList.as_view(), name="locations"),
    path("locations/new/", places.LocationCreate.as_view(), name="location_add"),
    path("locations/<int:pk>/", places.LocationDetail.as_view(), name="location"),
    path("locations/<int:pk>/edit/", places.LocationEdit.as_view(), name="location_edit"),
    path("locations/<int:pk>/delete/", places.LocationDelete.as_view(), name="location_delete"),
    # --- time periods, calendars: accesscontrol.views.schedules
    path("time-periods/", schedules.TimePeriodList.as_view(), name="time_periods"),
    path("time-periods/new/", schedules.TimePeriodCreate.as_view(), name="time_period_add"),
    path("time-periods/<int:pk>/", schedules.TimePeriodDetail.as_view(), name="time_period"),
    path("time-periods/<int:pk>/edit/", schedules.TimePeriodEdit.as_view(), name="time_period_edit"),
    path("time-periods/<int:pk>/delete/", schedules.TimePeriodDelete.as_view(), name="time_period_delete"),
    path("time-periods/<int:pk>/intervals/", schedules.TimePeriodIntervals.as_view(), name="time_period_intervals"),
    path("calendars/", schedules.CalendarList.as_view(), name="calendars"),
    path("calendars/new/", schedules.CalendarCreate.as_view(), name="calendar_add"),
    path("calendars/<int:pk>/", schedules.CalendarDetail.as_view(), name="calendar"),
    path("calendars/<int:pk>/edit/", schedules.CalendarEdit.as_view(), name="calendar_edit"),
    path("calendars/<int:pk>/delete/", schedules.CalendarDelete.as_view(), name="calendar_delete"),
    path("calendars/<int:pk>/days/", schedules.CalendarDays.as_view(), name="calendar_days"),
    path("calendars/<int:pk>/holidays/", schedules.CalendarHolidays.as_view(), name="calendar_holidays"),
    path("mode-schedules/", schedules.ModeScheduleList.as_view(), name="mode_schedules"),
    path("mode-schedules/new/", schedules.ModeScheduleCreate.as_view(), name="mode_schedule_add"),
    path("mode-schedules/<int:pk>/", schedules.ModeScheduleDetail.as_view(), name="mode_schedule"),
    path("mode-schedules/<int:pk>/edit/", schedules.ModeScheduleEdit.as_view(), name="mode_schedule_edit"),
    path("mode-schedules/<int:pk>/delete/", schedules.ModeScheduleDelete.as_view(), name="mode_schedule_delete"),
    path("mode-schedules/<int:pk>/changes/", schedules.ModeScheduleChanges.as_view(), name="mode_schedule_changes"),
    # --- access levels: accesscontrol.views.access_levels
    path("access-levels/", access_levels.AccessLevelList.as_view(), name="access_levels"),
    path("access-levels/new/", access_levels.AccessLevelCreate.as_view(), name="access_level_add"),
    path("access-levels/<int:pk>/", access_levels.AccessLevelDetail.as_view(), name="access_level"),
    path("access-levels/<int:pk>/edit/", access_levels.AccessLevelEdit.as_view(), name="access_level_edit"),
    path("access-levels/<int:pk>/delete/", access_levels.AccessLevelDelete.as_view(), name="access_level_delete"),
    path("access-levels/<int:pk>/entries/", access_levels.AccessLevelEntries.as_view(), name="access_level_entries"),
    # access points, zones, locations, time periods, calendars, access levels: accesscontrol.views.places, .schedules
    # audit trail, system auditor, operators and groups: accesscontrol.views.records, .operators (monitor: devices.urls)
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
    path("cardholders/<int:pk>/photo/", cardholders.CardholderPhotoView.as_view(), name="cardholder_photo"),
    path(
        "cardholders/<int:pk>/photo/thumbnail/",
        cardholders.CardholderPhotoView.as_view(thumbnail=True),
        name="cardholder_photo_thumbnail",
    ),
    path(
        "cardholders/<int:pk>/photo/upload/",
        cardholders.CardholderPhotoUploadView.as_view(),
        name="cardholder_photo_upload",
    ),
    path(
        "cardholders/<int:pk>/photo/remove/",
        cardholders.CardholderPhotoRemoveView.as_view(),
        name="cardholder_photo_remove",
    ),
    path(
        "cardholders/<int:pk>/face/consent/",
        cardholders.CardholderFaceConsentView.as_view(),
        name="cardholder_face_consent",
    ),
    path(
        "cardholders/<int:pk>/face/withdraw/",
        cardholders.CardholderFaceWithdrawView.as_view(),
        name="cardholder_face_withdraw",
    ),
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
    path("blacklist/", blacklist.BlacklistView.as_view(), name="blacklist"),
    path("jobs/", jobs.JobListView.as_view(), name="jobs"),
    path("jobs/<int:pk>/", jobs.JobDetailView.as_view(), name="job"),
    path("jobs/<int:pk>/download/", jobs.JobDownloadView.as_view(), name="job_download"),
    # --- backups (administrators) -----------------------------------------------------------
    path("backups/", backups.BackupListView.as_view(), name="backups"),
    path("backups/now/", backups.BackupNowView.as_view(), name="backup_now"),
    # --- cardholder sources (directories, HR feeds) -------------------------------------------
    path("sources/", sources.SourceListView.as_view(), name="sources"),
    path("sources/<int:pk>/", sources.SourceDetailView.as_view(), name="source"),
    path("sources/<int:pk>/run/", sources.SourceRunView.as_view(), name="source_run"),
    path("sources/runs/<int:pk>/", sources.SyncRunView.as_view(), name="sync_run"),
]
