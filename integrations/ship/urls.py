from django.urls import path

from integrations.ship.views import ship_endpoint

urlpatterns = [path("ship/", ship_endpoint, name="ship")]
