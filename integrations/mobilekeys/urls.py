"""The web app's mobile key actions (integrations.mobilekeys.views); the list is on the cardholder's page."""

from django.urls import path

from integrations.mobilekeys import views

urlpatterns = [
    path("cardholders/<int:pk>/mobile-keys/", views.MobileKeyIssueView.as_view(), name="mobile_key_issue"),
    path("keys/<int:pk>/invite-phone/", views.PhoneInviteView.as_view(), name="phone_invite"),
]
