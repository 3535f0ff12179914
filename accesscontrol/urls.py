"""The operator web app's URLs (the API is under /api/v1/, the admin under /admin/).

Each area's pages live in a module of ``accesscontrol.views``; the names here
are what ``accesscontrol.navigation`` and the templates link to.
"""

from django.urls import path  # noqa: F401

urlpatterns = [
    # login, logout, account, two-factor: accesscontrol.views.login
    # dashboard, cardholders, keys, jobs: accesscontrol.views.people, accesscontrol.views.jobs
    # access points, zones, locations, time periods, calendars, access levels: accesscontrol.views.places, .schedules
    # monitor, audit trail, system auditor, operators and groups: accesscontrol.views.monitor, .records, .operators
]
