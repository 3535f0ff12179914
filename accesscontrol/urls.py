"""The operator web app's URLs (the API is under /api/v1/, the admin under /admin/).

Each area's pages live in a module of ``accesscontrol.views``; the names here
are what ``accesscontrol.navigation`` and the templates link to.
"""

from django.urls import path

from accesscontrol.views import login

urlpatterns = [
    path("login/", login.login_view, name="login"),
    path("login/code/", login.login_otp_view, name="login_otp"),
    path("logout/", login.logout_view, name="logout"),
    path("session/keepalive/", login.session_keepalive, name="session_keepalive"),
    path("account/", login.account_view, name="account"),
    path("account/two-factor/", login.two_factor_enrol_view, name="account_two_factor"),
    # login, logout, account, two-factor: accesscontrol.views.login
    # dashboard, cardholders, keys, jobs: accesscontrol.views.people, accesscontrol.views.jobs
    # access points, zones, locations, time periods, calendars, access levels: accesscontrol.views.places, .schedules
    # monitor, audit trail, system auditor, operators and groups: accesscontrol.views.monitor, .records, .operators
]
