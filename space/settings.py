"""Settings, read from the environment.

Two profiles share this module. The embedded default (SPACE_PROFILE unset)
needs nothing: SQLite under var/, in-memory channel layer, a generated secret
key. The production profile (SPACE_PROFILE=production) refuses to start
unless the unsafe defaults have been replaced.
"""

import datetime
import ipaddress
import os
import sys
import tempfile
import tomllib
import zoneinfo
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from space.env import envbool, envfloat, envint, envlist, envstr, generated_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("SPACE_VAR_DIR", str(BASE_DIR / "var")))

PROFILE = envstr("SPACE_PROFILE", "embedded")
if PROFILE not in ("embedded", "production"):
    raise ImproperlyConfigured(f"SPACE_PROFILE must be 'embedded' or 'production', not {PROFILE!r}")
PRODUCTION = PROFILE == "production"

DEBUG = envbool("SPACE_DEBUG", False)

SECRET_KEY = envstr("SPACE_SECRET_KEY")
if SECRET_KEY is None and not PRODUCTION:
    SECRET_KEY = generated_secret(VAR_DIR / "secret_key")

# Encrypts device keys and other secrets at rest (core/vault.py); never stored in the database.
SPACE_MASTER_KEY = envstr("SPACE_MASTER_KEY")
if SPACE_MASTER_KEY is None and not PRODUCTION:
    SPACE_MASTER_KEY = generated_secret(VAR_DIR / "master_key")

# Seals backups (core/backup); kept apart from them, so that a copy of the backup folder alone reveals nothing.
# The production profile makes no backup without one of BACKUP_KEY_MIN_CHARS characters or more (see below).
SPACE_BACKUP_KEY = envstr("SPACE_BACKUP_KEY")
SPACE_BACKUP_KEY_PATH = os.environ.get("SPACE_BACKUP_KEY_FILE") or None  # refused when inside the backup folder
if SPACE_BACKUP_KEY is None and not PRODUCTION:
    SPACE_BACKUP_KEY_PATH = str(VAR_DIR / "backup_key")
    SPACE_BACKUP_KEY = generated_secret(VAR_DIR / "backup_key")

ALLOWED_HOSTS = envlist("SPACE_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("SPACE_CSRF_TRUSTED_ORIGINS", [])

TIME_ZONE = envstr("SPACE_TIME_ZONE", "UTC")
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"SPACE_TIME_ZONE: unknown time zone {TIME_ZONE!r}") from None
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = "en-us"


def _production_problems() -> list[str]:
    problems = []
    if DEBUG:
        problems.append("SPACE_DEBUG is on")
    if not SECRET_KEY:
        problems.append("SPACE_SECRET_KEY is not set")
    elif len(SECRET_KEY) < 32:
        problems.append("SPACE_SECRET_KEY is shorter than 32 characters")
    if not SPACE_MASTER_KEY:
        problems.append("SPACE_MASTER_KEY is not set")
    elif len(SPACE_MASTER_KEY) < 32:
        problems.append("SPACE_MASTER_KEY is shorter than 32 characters")
    if not ALLOWED_HOSTS:
        problems.append("SPACE_ALLOWED_HOSTS is empty")
    elif "*" in ALLOWED_HOSTS:
        problems.append("SPACE_ALLOWED_HOSTS contains '*'")
    return problems


if PRODUCTION and (problems := _production_problems()):
    raise ImproperlyConfigured("Refusing to start the production profile: " + "; ".join(problems) + ".")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as our own static files: sites have no internet access
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "space",
    "accesscontrol",
    "devices",
    "hotel",
    "integrations",
    "simulation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accesscontrol.middleware.TwoFactorEnrolmentMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "space.urls"
ASGI_APPLICATION = "space.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accesscontrol.context_processors.frame",
            ],
        },
    },
]

# --- database -------------------------------------------------------------
DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'space.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("SPACE_DB_CONN_MAX_AGE", 0))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the monitor read while the audit writer commits; IMMEDIATE
    # transactions take the write lock up front instead of failing mid-way.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # Tests use a file too (not Django's shared in-memory database, which locks whole
    # tables): the device bridge's threads read and write while a test looks on.
    # One file per test process, so that two test runs never share one.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"space-test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis: channel layer, cache, celery broker -----------------------------
REDIS_URL = envstr("REDIS_URL")
# Messages a websocket's channel may hold before the layer drops more (the monitor publishes in batches).
CHANNEL_CAPACITY = 1000
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py's default socket timeout (5 s) equals channels-redis's blocking pop (5 s): a longer
            # one keeps an idle receive from failing with a timeout.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": CHANNEL_CAPACITY},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": CHANNEL_CAPACITY}}
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_DEFAULT_QUEUE = "default"
# The long-lived services (space/tasks.py: run_service, and beat's ensure_services) have a queue of their own,
# served by a threads-pool worker, so that they never take the slots of short tasks.
CELERY_TASK_ROUTES = {"space.tasks.*": {"queue": "connectors"}}
CELERY_TIMEZONE = TIME_ZONE

# --- operators and passwords ---------------------------------------------
AUTH_USER_MODEL = "accesscontrol.Operator"
AUTHENTICATION_BACKENDS = ["accesscontrol.backends.OperatorBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
SPACE_PASSWORD_MIN_LENGTH = envint("SPACE_PASSWORD_MIN_LENGTH", 12)
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": SPACE_PASSWORD_MIN_LENGTH},
    },
    {"NAME": "accesscontrol.passwords.CharacterClassesValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
]
# Operators from a directory (LDAP), integrations/ldap/. Unset SPACE_LDAP_URL: LDAP is off.
# SPACE_LDAP_GROUP_MAP is a JSON object: {"<directory group DN>": "<operator group name>" or [names]}.
SPACE_LDAP = None
SPACE_LDAP_URL = envstr("SPACE_LDAP_URL")
SPACE_LDAP_SYNC_MINUTES = envint("SPACE_LDAP_SYNC_MINUTES", 60)  # beat's sync_ldap; 0: only by manage.py sync_ldap
if SPACE_LDAP_URL:
    from integrations.ldap.config import directory_config
    from integrations.ldap.directory import auth_ldap_settings

    SPACE_LDAP = directory_config(
        url=SPACE_LDAP_URL,
        bind_dn=envstr("SPACE_LDAP_BIND_DN"),
        bind_password=envstr("SPACE_LDAP_BIND_PASSWORD"),
        start_tls=envbool("SPACE_LDAP_START_TLS", False),
        ca_file=envstr("SPACE_LDAP_CA_FILE"),
        user_base=envstr("SPACE_LDAP_USER_BASE"),
        user_filter=envstr("SPACE_LDAP_USER_FILTER", "(uid=%(user)s)"),
        group_base=envstr("SPACE_LDAP_GROUP_BASE"),
        group_type=envstr("SPACE_LDAP_GROUP_TYPE", "groupOfNames"),
        require_group=envstr("SPACE_LDAP_REQUIRE_GROUP"),
        superuser_group=envstr("SPACE_LDAP_SUPERUSER_GROUP"),
        group_map=envstr("SPACE_LDAP_GROUP_MAP"),
        page_size=envint("SPACE_LDAP_PAGE_SIZE", 500),
    )
    if PRODUCTION and SPACE_LDAP.url.startswith("ldap://") and not SPACE_LDAP.start_tls:
        raise ImproperlyConfigured(
            "Refusing to start the production profile: operators' passwords would cross the network to the "
            "directory in clear; use an ldaps:// SPACE_LDAP_URL or SPACE_LDAP_START_TLS=true."
        )
    globals().update(auth_ldap_settings(SPACE_LDAP))
    # The directory first; then the database, for local operators (and while the directory is down).
    AUTHENTICATION_BACKENDS = ["integrations.ldap.backend.DirectoryBackend", *AUTHENTICATION_BACKENDS]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# Lockout (per username) and throttling (per source address) after failed logins, wrong TOTP codes included.
SPACE_LOGIN_MAX_FAILURES = envint("SPACE_LOGIN_MAX_FAILURES", 5)
SPACE_LOGIN_MAX_FAILURES_PER_ADDRESS = envint("SPACE_LOGIN_MAX_FAILURES_PER_ADDRESS", 20)
SPACE_LOGIN_FAILURE_WINDOW_SECONDS = envint("SPACE_LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
SPACE_LOGIN_LOCKOUT_SECONDS = envint("SPACE_LOGIN_LOCKOUT_SECONDS", 15 * 60)
SPACE_LOGIN_ATTEMPTS_KEPT_DAYS = envint("SPACE_LOGIN_ATTEMPTS_KEPT_DAYS", 30)
# The issuer an authenticator app shows beside the operator's name.
OTP_TOTP_ISSUER = envstr("SPACE_TOTP_ISSUER", "Space")
# Wrong codes count towards the login lockout above (per user and per address); django-otp's own per-device
# back-off on top would refuse a right code typed within seconds of a wrong one.
OTP_TOTP_THROTTLE_FACTOR = 0
OTP_STATIC_THROTTLE_FACTOR = 0
# Idle log-off: the page logs itself off after this long without keyboard or mouse activity (static/space.js);
# the server forgets the session a minute later, so that log-off still knows whose it is (system auditor).
SPACE_SESSION_IDLE_SECONDS = envint("SPACE_SESSION_IDLE_SECONDS", 30 * 60)
SESSION_COOKIE_AGE = SPACE_SESSION_IDLE_SECONDS + 60
for _name, _least in [
    ("SPACE_PASSWORD_MIN_LENGTH", 8),
    ("SPACE_LOGIN_MAX_FAILURES", 1),
    ("SPACE_LOGIN_MAX_FAILURES_PER_ADDRESS", 1),
    ("SPACE_LOGIN_FAILURE_WINDOW_SECONDS", 1),
    ("SPACE_LOGIN_LOCKOUT_SECONDS", 1),
    ("SPACE_LOGIN_ATTEMPTS_KEPT_DAYS", 1),
    ("SPACE_SESSION_IDLE_SECONDS", 60),
]:
    if globals()[_name] < _least:
        raise ImproperlyConfigured(f"{_name} must be at least {_least}, not {globals()[_name]}")
# Behind a reverse proxy that sets X-Forwarded-For: the address it saw is the client's (system auditor, lockout).
SPACE_TRUST_X_FORWARDED_FOR = envbool("SPACE_TRUST_X_FORWARDED_FOR", False)
SESSION_SAVE_EVERY_REQUEST = True  # the age above is then an inactivity timeout
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# HTTPS: Space's own TLS (core/tls.py, served by runspace) with a certificate and key, or a TLS reverse proxy in front
# declared by SPACE_BEHIND_TLS_PROXY (then its X-Forwarded-Proto is trusted). The production profile's runspace
# refuses to serve without one of them.
SPACE_TLS_CERT_FILE = envstr("SPACE_TLS_CERT_FILE", "")
SPACE_TLS_KEY_FILE = envstr("SPACE_TLS_KEY_FILE", "")
if bool(SPACE_TLS_CERT_FILE) != bool(SPACE_TLS_KEY_FILE):
    raise ImproperlyConfigured("SPACE_TLS_CERT_FILE and SPACE_TLS_KEY_FILE go together: set both, or neither")
SPACE_TLS = bool(SPACE_TLS_CERT_FILE)
SPACE_BEHIND_TLS_PROXY = envbool("SPACE_BEHIND_TLS_PROXY", False)
if SPACE_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if PRODUCTION or SPACE_TLS or SPACE_BEHIND_TLS_PROXY:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("SPACE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("SPACE_HSTS_SECONDS", 31536000)

# --- static files ------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(envstr("SPACE_STATIC_ROOT", str(VAR_DIR / "static")))

# --- REST API -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accesscontrol.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accesscontrol.api.permissions.OperatorPermission"],
    "DEFAULT_PAGINATION_CLASS": "accesscontrol.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "accesscontrol.api.exceptions.exception_handler",
    "DEFAULT_VERSIONING_CLASS": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Space API",
    "DESCRIPTION": "Access control server: cardholders, keys, access points, schedules, audit trail.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The errors every operation can answer with (400, 401, 403, 404, 409) are documented by one hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "accesscontrol.api.schema.add_error_responses",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would otherwise send the schema to an online validator for its badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Choice sets used by more than one component (PPD audit uploads, mobile keys) keep their one name.
    "ENUM_NAME_OVERRIDES": {
        "AuditEventKindEnum": "accesscontrol.choices.AuditKind",
        "KeyKindEnum": "accesscontrol.choices.KeyKind",
        "KeyStatusEnum": "accesscontrol.choices.KeyStatus",
        "OpeningModeEnum": "accesscontrol.choices.OpeningMode",
        # A reader's and a face terminal's direction: one choice set, one name.
        "ReaderDirectionEnum": "devices.choices.ReaderDirection",
    },
}

# --- logging ----------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("SPACE_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Space itself ----------------------------------------------------------------
SPACE_HTTP_HOST = envstr("SPACE_HTTP_HOST", "127.0.0.1")
SPACE_HTTP_PORT = envint("SPACE_HTTP_PORT", 8100)

# The device bridge (SDP/1 over UDP, devices/sdp/bridge.py). Devices are on the site's
# network, so it listens on every interface; the protocol authenticates every frame.
SPACE_DEVICE_HOST = envstr("SPACE_DEVICE_HOST", "0.0.0.0")  # noqa: S104 (on purpose, see above)
SPACE_DEVICE_PORT = envint("SPACE_DEVICE_PORT", 7100)
SPACE_DEVICE_HEARTBEAT_SECONDS = envint("SPACE_DEVICE_HEARTBEAT_SECONDS", 30)
# USB encoders behind local bridges (devices/usb_encoders.py): how long an encoder waits for a card, and
# how long a job of an encoder whose bridge is not connected stays queued before it fails (encoder_offline).
SPACE_ENCODE_CARD_WAIT_SECONDS = envint("SPACE_ENCODE_CARD_WAIT_SECONDS", 30)
SPACE_USB_ENCODER_GRACE_SECONDS = envint("SPACE_USB_ENCODER_GRACE_SECONDS", 10)
# Where the bridge runs: inside runspace (embedded) or as a Celery task on the connectors queue (production).
SPACE_BRIDGE_IN_RUNSPACE = envbool("SPACE_BRIDGE_IN_RUNSPACE", not PRODUCTION)
# OSDP buses (devices/osdp/): inside runspace (every enabled bus) or each bus a service of its own.
SPACE_OSDP_IN_RUNSPACE = envbool("SPACE_OSDP_IN_RUNSPACE", not PRODUCTION)
# Keypads at doors Space runs (devices/runtime/keypad.py): how long a card waits for its PIN, how many wrong
# PINs in a row lock the keypad, and for how long.
SPACE_PIN_TIMEOUT_SECONDS = envint("SPACE_PIN_TIMEOUT_SECONDS", 10)
SPACE_PIN_MAX_WRONG = envint("SPACE_PIN_MAX_WRONG", 3)
SPACE_PIN_LOCKOUT_SECONDS = envint("SPACE_PIN_LOCKOUT_SECONDS", 60)
# The same for the event stream's sender (integrations.eventstream.service; space/services.py).
SPACE_EVENT_STREAM_IN_RUNSPACE = envbool("SPACE_EVENT_STREAM_IN_RUNSPACE", not PRODUCTION)
# The mode scheduler (devices/scheduler.py): automatic opening mode changes, in runspace or as a Celery task.
SPACE_MODE_SCHEDULER_IN_RUNSPACE = envbool("SPACE_MODE_SCHEDULER_IN_RUNSPACE", not PRODUCTION)
# The PMS and SHIP connectors (space/services.py): in runspace, or as Celery long-lived tasks.
SPACE_CONNECTORS_IN_RUNSPACE = envbool("SPACE_CONNECTORS_IN_RUNSPACE", not PRODUCTION)
# Face terminals (devices/face/, docs/face-terminals.md): the site's MQTT broker Space connects to over TLS with
# its client certificate (manage.py face_broker); unset host: no face terminal service. The device CA's folder
# holds Space's certificate and key.
SPACE_FACE_MQTT_HOST = envstr("SPACE_FACE_MQTT_HOST", "")
SPACE_FACE_MQTT_PORT = envint("SPACE_FACE_MQTT_PORT", 8883)
SPACE_FACE_CA_DIR = envstr("SPACE_FACE_CA_DIR", "")
SPACE_FACE_IN_RUNSPACE = envbool("SPACE_FACE_IN_RUNSPACE", not PRODUCTION)
# FIAS (integrations/pms/fias_service.py): the PMS interface Space connects to, "host:port"; unset: no FIAS.
SPACE_FIAS_ADDRESS = envstr("SPACE_FIAS_ADDRESS", "")
# The hotel's check-out time (local, HH:MM): a guest key's end when a PMS gives a departure date only,
# and where a departure at the front desk starts. Checked at start-up.
SPACE_HOTEL_CHECK_OUT_TIME = envstr("SPACE_HOTEL_CHECK_OUT_TIME", "12:00")
try:
    datetime.time.fromisoformat(SPACE_HOTEL_CHECK_OUT_TIME)
except ValueError:
    raise ImproperlyConfigured(f"SPACE_HOTEL_CHECK_OUT_TIME is HH:MM, not {SPACE_HOTEL_CHECK_OUT_TIME!r}") from None
# The Industry Standard PMS connector (integrations/pms/industry_service.py, docs/industry-standard.md): a TCP
# port and/or a serial line. The protocol has no authentication, so it listens on loopback unless told otherwise.
SPACE_INDUSTRY_HOST = envstr("SPACE_INDUSTRY_HOST", "127.0.0.1")
SPACE_INDUSTRY_PORT = envint("SPACE_INDUSTRY_PORT", 0)  # 0: no TCP
SPACE_INDUSTRY_SERIAL = envstr("SPACE_INDUSTRY_SERIAL", "")  # a device path, e.g. /dev/ttyUSB0; empty: none
SPACE_INDUSTRY_BAUD = envint("SPACE_INDUSTRY_BAUD", 9600)
SPACE_INDUSTRY_ENABLED = bool(SPACE_INDUSTRY_PORT or SPACE_INDUSTRY_SERIAL)  # turns the connector on

# SHIP (integrations/ship, docs/ship-in-space.md). Over HTTPS it is the web server's POST /ship/; the TCP
# server (STP framing) runs when SPACE_SHIP_PORT is set. TCP carries the API key in clear: a trusted network.
SPACE_SHIP_PORT = envint("SPACE_SHIP_PORT", 0)
SPACE_SHIP_BIND = envstr("SPACE_SHIP_BIND", "0.0.0.0")  # noqa: S104 (integrators are on the site's network)
SPACE_SHIP_IDLE_SECONDS = envint("SPACE_SHIP_IDLE_SECONDS", 300)
SPACE_SHIP_MAX_CONNECTIONS = envint("SPACE_SHIP_MAX_CONNECTIONS", 64)
# SHIP-host client mode (integrations/ship/host.py): an outside SHIP host asked for users' permissions.
SPACE_SHIP_HOST_URL = envstr("SPACE_SHIP_HOST_URL", "")  # https://host/path or tcp://host:port
SPACE_SHIP_HOST_KEY = envstr("SPACE_SHIP_HOST_KEY", "")  # sent as Salto-SHIP-Key (HTTP) or ApiKey (TCP)
SPACE_SHIP_HOST_TIMEOUT_SECONDS = envint("SPACE_SHIP_HOST_TIMEOUT_SECONDS", 10)

# Data-on-card blacklist (accesscontrol/blacklist.py): a cancelled key is blacklisted until it would
# have expired; a key with no end at all (no validity end, no cardholder expiration, no revalidation
# period) is blacklisted this many days, after which offline locks would open for it again: give keys
# an end or a revalidation period where that matters.
SPACE_BLACKLIST_DEFAULT_DAYS = envint("SPACE_BLACKLIST_DEFAULT_DAYS", 365)
if SPACE_BLACKLIST_DEFAULT_DAYS < 1:
    raise ImproperlyConfigured(f"SPACE_BLACKLIST_DEFAULT_DAYS must be at least 1, not {SPACE_BLACKLIST_DEFAULT_DAYS}")

# Audit retention (accesscontrol/retention.py, docs/audit-retention.md): days each class of the audit
# trail is kept before the daily purge archives it under SPACE_AUDIT_ARCHIVE_DIR and deletes it; 0 keeps it
# forever. The system auditor (what operators did) is kept at least as long as the others.
SPACE_AUDIT_KEEP_ACCESS_DAYS = envint("SPACE_AUDIT_KEEP_ACCESS_DAYS", 365)
SPACE_AUDIT_KEEP_ALARM_DAYS = envint("SPACE_AUDIT_KEEP_ALARM_DAYS", 730)
SPACE_AUDIT_KEEP_SYSTEM_DAYS = envint("SPACE_AUDIT_KEEP_SYSTEM_DAYS", 2555)
SPACE_AUDIT_ARCHIVE_DIR = Path(envstr("SPACE_AUDIT_ARCHIVE_DIR", str(VAR_DIR / "archive")))


def _retention_problems(access: int, alarm: int, system: int) -> list[str]:
    named = {"access": access, "alarm": alarm, "system": system}
    problems = [f"SPACE_AUDIT_KEEP_{name.upper()}_DAYS is negative" for name, days in named.items() if days < 0]
    forever = 10**9  # 0 keeps forever: longer than any number of days
    for name in ("access", "alarm"):
        if (system or forever) < (named[name] or forever):
            problems.append(f"the system auditor would be kept less long than {name} events")
    return problems


if _problems := _retention_problems(
    SPACE_AUDIT_KEEP_ACCESS_DAYS, SPACE_AUDIT_KEEP_ALARM_DAYS, SPACE_AUDIT_KEEP_SYSTEM_DAYS
):
    raise ImproperlyConfigured(
        "SPACE_AUDIT_KEEP_*_DAYS: " + "; ".join(_problems) + " (0 keeps forever; the system auditor is kept longest)."
    )

# Cardholder photos (accesscontrol/photos.py, docs/photos.md): files under SPACE_PHOTO_DIR, never under a public URL
# (served only by views that check the operator may see the cardholder); an upload larger than this is refused.
SPACE_PHOTO_DIR = Path(envstr("SPACE_PHOTO_DIR", str(VAR_DIR / "photos")))
SPACE_PHOTO_MAX_BYTES = envint("SPACE_PHOTO_MAX_BYTES", 5 * 1024 * 1024)
if STATIC_ROOT.resolve() in (SPACE_PHOTO_DIR.resolve(), *SPACE_PHOTO_DIR.resolve().parents):
    raise ImproperlyConfigured("SPACE_PHOTO_DIR is inside SPACE_STATIC_ROOT, which anyone may read: keep photos apart.")
if SPACE_PHOTO_MAX_BYTES < 1024:
    raise ImproperlyConfigured(f"SPACE_PHOTO_MAX_BYTES must be at least 1024, not {SPACE_PHOTO_MAX_BYTES}")

# Health and metrics (space/health.py): /readyz fails when less than this many MB are free under VAR_DIR.
SPACE_READY_MIN_FREE_MB = envint("SPACE_READY_MIN_FREE_MB", 200)
# Addresses or networks (comma-separated, e.g. 10.0.0.5,10.1.0.0/24) that may read /metrics without an API key.
# Loopback is not allowed unless listed: behind a reverse proxy every request comes from it.
SPACE_METRICS_ALLOWED_ADDRESSES = envlist("SPACE_METRICS_ALLOWED_ADDRESSES", [])
for _address in SPACE_METRICS_ALLOWED_ADDRESSES:
    try:
        ipaddress.ip_network(_address, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"SPACE_METRICS_ALLOWED_ADDRESSES: {_address!r} is not an address or network (10.0.0.5, 10.1.0.0/24)"
        ) from None
# Metrics processes keep (decisions, latency, websockets, links: core/metrics.py) go to files in this directory,
# summed at /metrics. prometheus_client reads PROMETHEUS_MULTIPROC_DIR when first imported: set it before that.
SPACE_METRICS_DIR = Path(envstr("SPACE_METRICS_DIR", str(VAR_DIR / "metrics")))
if "prometheus_client.values" in sys.modules and os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(SPACE_METRICS_DIR):
    raise ImproperlyConfigured("prometheus_client was imported before the settings set SPACE_METRICS_DIR")
SPACE_METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(SPACE_METRICS_DIR)

# Backups (core/backup, accesscontrol/backups.py, docs/backups.md): daily at SPACE_BACKUP_TIME (local, HH:MM) into
# SPACE_BACKUP_DIR (where an off-site share is mounted); the newest of the last N days, ISO weeks and months kept.
SPACE_VERSION = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]["version"]
SPACE_BACKUP_DIR = Path(envstr("SPACE_BACKUP_DIR", str(VAR_DIR / "backups")))
SPACE_BACKUP_TIME = envstr("SPACE_BACKUP_TIME", "02:30")
try:
    datetime.time.fromisoformat(SPACE_BACKUP_TIME)
except ValueError:
    raise ImproperlyConfigured(f"SPACE_BACKUP_TIME is HH:MM, not {SPACE_BACKUP_TIME!r}") from None
SPACE_BACKUP_KEEP_DAILY = envint("SPACE_BACKUP_KEEP_DAILY", 7)
SPACE_BACKUP_KEEP_WEEKLY = envint("SPACE_BACKUP_KEEP_WEEKLY", 4)
SPACE_BACKUP_KEEP_MONTHLY = envint("SPACE_BACKUP_KEEP_MONTHLY", 12)
# Each backup read back from the folder and checked after it is made (PostgreSQL: restored into a scratch database,
# which needs the CREATEDB right); one that does not verify is a failed backup.
SPACE_BACKUP_VERIFY = envbool("SPACE_BACKUP_VERIFY", True)
SPACE_BACKUP_MAX_AGE_HOURS = envint("SPACE_BACKUP_MAX_AGE_HOURS", 26)  # older newest backup: the backup_overdue alarm
for _name, _least in [
    ("SPACE_BACKUP_KEEP_DAILY", 1),
    ("SPACE_BACKUP_KEEP_WEEKLY", 0),
    ("SPACE_BACKUP_KEEP_MONTHLY", 0),
    ("SPACE_BACKUP_MAX_AGE_HOURS", 1),
]:
    if globals()[_name] < _least:
        raise ImproperlyConfigured(f"{_name} must be at least {_least}, not {globals()[_name]}")

# Face matching (accesscontrol/facematch.py, docs/face-matching.md): the cosine score a face must reach, unless an
# access point sets its own. 0.40 keeps a 512-d model's impostors (scores ~N(0, 1/512): 0.40 is 9 standard
# deviations) out even among 100,000 people while genuine captures (~0.6) pass; calibrate to the terminals' model.
SPACE_FACE_THRESHOLD = envfloat("SPACE_FACE_THRESHOLD", 0.40)
if not 0.0 < SPACE_FACE_THRESHOLD < 1.0:
    raise ImproperlyConfigured(f"SPACE_FACE_THRESHOLD must be between 0 and 1, not {SPACE_FACE_THRESHOLD}")
# How long a face terminal has to capture the face an operator asked it to enrol (devices/actions.py).
SPACE_FACE_ENROL_SECONDS = envint("SPACE_FACE_ENROL_SECONDS", 120)
if SPACE_FACE_ENROL_SECONDS < 10:
    raise ImproperlyConfigured(f"SPACE_FACE_ENROL_SECONDS must be at least 10, not {SPACE_FACE_ENROL_SECONDS}")
