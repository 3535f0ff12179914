import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "space.settings")

django_asgi_app = get_asgi_application()

# Needs Django set up first.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from accesscontrol.consumers import MonitorConsumer  # noqa: E402
from devices.consumers import EncoderConsumer  # noqa: E402

websocket_urls = [
    path("ws/monitor/", MonitorConsumer.as_asgi()),
    # Local bridges of USB encoders: they authenticate with the encoder's device key, not a session.
    path("ws/encoder/", EncoderConsumer.as_asgi()),
]


class BrowserOriginValidator(OriginValidator):
    """A browser always sends Origin with a websocket, and it must be one of this server's hosts; other
    clients (integrators with an API key) send none, and cross-site abuse needs a browser."""

    def valid_origin(self, parsed_origin):
        return parsed_origin is None or super().valid_origin(parsed_origin)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": BrowserOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urls)), settings.ALLOWED_HOSTS),
    }
)
