"""opscenter settings: everything a deployment changes comes from the environment."""

import datetime
import json
import os
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def envfloat(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", False)
# Development (DEBUG on) may run on the built-in key; production refuses to start with it:
# whoever knows it could forge sessions and password-reset links.
DEVELOPMENT_SECRET_KEY = "opscenter-insecure-development-key-change-me"
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set: opscenter will not run in production (DEBUG off) with its "
        "built-in development key. Set SECRET_KEY to a long random value, e.g. the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, or DEBUG=1 to develop."
    )
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

# Runtime files (SQLite database, attempt scratch files) live here unless told otherwise.
VAR_DIR = Path(os.environ.get("OPSCENTER_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    # django.contrib.admin, its site for superusers only (apps/core/admin_site.py).
    "apps.core.admin_config.OpscenterAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    # Failed logins throttled per username and address (AXES_* below).
    "axes",
    # django-ninja's own static files: the API docs (Swagger UI) are served from here,
    # never from a CDN.
    "ninja",
    "apps.core",
    "apps.accounts",
    "apps.projects",
    "apps.configuration",
    "apps.nodes",
    "apps.instances",
    "apps.backfills",
    "apps.realtime",
    "apps.audit",
    "apps.monitoring",
    "apps.baselines",
    "apps.quality",
    "apps.notifications",
    "apps.health",
    "apps.resources",
    "apps.backups",
    "apps.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Every error under /api is the API's JSON error shape, whichever layer answers it.
    "opscenter.api.JsonErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "apps.projects.middleware.CurrentProjectMiddleware",
    # After the project: a chosen project's zone is the page's unless the viewer has one.
    "apps.accounts.timezones.ViewerTimezoneMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "opscenter.urls"

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
                "apps.projects.context_processors.projects",
            ],
        },
    },
]

WSGI_APPLICATION = "opscenter.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'opscenter.sqlite3'}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A worker cluster writes from several processes: WAL lets readers go on while one
    # writes, IMMEDIATE takes the write lock up front so transactions queue instead of
    # failing with "database is locked" half way through.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests start worker subprocesses that must see the same database: a file, not memory.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_opscenter.sqlite3")}
else:
    # A database that is down answers at once (refused); one that is unreachable must not
    # hold a worker's heartbeat for the operating system's TCP timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", envint("DB_CONNECT_TIMEOUT", 5)
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "instances:list"
LOGOUT_REDIRECT_URL = "login"
# django-axes first: it refuses a locked-out username and address before any password is
# checked. It needs the request, so authenticate() is always called with one (the login
# form and the admin's do; tests log in with force_login).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# --- Login throttling (django-axes) -----------------------------------------------------
# After OPSCENTER_LOGIN_FAILURE_LIMIT failed logins of one username from one address, that
# pair is refused for OPSCENTER_LOGIN_COOLOFF_MINUTES, counted from the failure that locked
# it (attempts while locked do not extend it). Other users, and the same user from
# elsewhere, are not affected; neither is the API's bearer-token authentication.
OPSCENTER_LOGIN_FAILURE_LIMIT = envint("OPSCENTER_LOGIN_FAILURE_LIMIT", 5)
OPSCENTER_LOGIN_COOLOFF_MINUTES = envint("OPSCENTER_LOGIN_COOLOFF_MINUTES", 15)
# Reverse proxies in front of opscenter that append the client's address to
# X-Forwarded-For: 0 takes the connection's address (REMOTE_ADDR); behind one proxy, 1.
# Behind a proxy left at 0, every client seems to come from the proxy's address.
OPSCENTER_PROXY_COUNT = envint("OPSCENTER_PROXY_COUNT", 0)
AXES_FAILURE_LIMIT = OPSCENTER_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = datetime.timedelta(minutes=OPSCENTER_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "apps.accounts.throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.throttle.lockout_response"
# No banner at every start of every command; failures and lockouts are still logged.
AXES_VERBOSE = False
# Days a new API token works unless its maker chooses otherwise (the tokens page,
# `opscenter token create --days N`); 0: tokens never expire.
OPSCENTER_TOKEN_DAYS = envint("OPSCENTER_TOKEN_DAYS", 90)

# --- Sessions, cookies and security headers ---------------------------------------------
# Production (DEBUG off) defaults are the safe ones; each can be changed by the environment
# variable of the same name. Cookies go over HTTPS only, the session lasts a working day.
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = envbool("SESSION_COOKIE_HTTPONLY", True)
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 12 * 3600)
SESSION_COOKIE_SAMESITE = os.environ.get("SESSION_COOKIE_SAMESITE", "Lax")
# HSTS is only sent on HTTPS answers, so it is harmless where opscenter is reached over
# plain HTTP; a year once it is reached over HTTPS.
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
# Off by default: behind a TLS-terminating proxy the proxy usually redirects, and Django
# can only tell HTTPS from HTTP with SECURE_PROXY_SSL_HEADER (else it would redirect for
# ever). Where opscenter itself should send HTTP to HTTPS, set both.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
# "HEADER,value": the header a trusted proxy sets on HTTPS requests, as Django names it in
# request.META, e.g. "HTTP_X_FORWARDED_PROTO,https". Only set it behind a proxy that sets
# (and overwrites) that header; a client could send it otherwise.
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header:
    _header, _, _value = (part.strip() for part in _proxy_ssl_header.partition(","))
    if not _header.startswith("HTTP_") or not _value:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER: give the header as Django names it and the value that "
            'means HTTPS, separated by a comma: "HTTP_X_FORWARDED_PROTO,https"'
        )
    SECURE_PROXY_SSL_HEADER = (_header, _value)
SECURE_CONTENT_TYPE_NOSNIFF = envbool("SECURE_CONTENT_TYPE_NOSNIFF", True)
SECURE_REFERRER_POLICY = os.environ.get("SECURE_REFERRER_POLICY", "same-origin")
X_FRAME_OPTIONS = os.environ.get("X_FRAME_OPTIONS", "DENY")

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_AUTOREFRESH = True  # serve from finders without collectstatic (dev and tests)
WHITENOISE_USE_FINDERS = True
# Front-end libraries come pinned from the npm registry (package.json); only their
# distributed files are served.
NODE_MODULES = BASE_DIR / "node_modules"
for _prefix, _path in [
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/chartjs", NODE_MODULES / "chart.js" / "dist"),
    ("vendor/cytoscape", NODE_MODULES / "cytoscape" / "dist"),
    ("vendor/cytoscape-dagre", NODE_MODULES / "cytoscape-dagre" / "dist"),
]:
    if _path.exists():
        STATICFILES_DIRS.append((_prefix, _path))
# Uploaded files (project resources, backups) go through Django's default storage: a
# local directory by default, any django-storages backend by OPSCENTER_STORAGE_BACKEND
# (a dotted class path, or "s3" for storages.backends.s3.S3Storage, which needs
# `pip install django-storages[s3]`) with its options as a JSON object in
# OPSCENTER_STORAGE_OPTIONS, e.g. {"bucket_name": "opscenter", "endpoint_url": "..."};
# S3 credentials come from boto3's own variables (AWS_ACCESS_KEY_ID, ...).
OPSCENTER_STORAGE_DIR = Path(os.environ.get("OPSCENTER_STORAGE_DIR") or VAR_DIR / "storage")
STORAGE_BACKEND_ALIASES = {
    "local": "django.core.files.storage.FileSystemStorage",
    "s3": "storages.backends.s3.S3Storage",
}
OPSCENTER_STORAGE_BACKEND = os.environ.get("OPSCENTER_STORAGE_BACKEND", "").strip() or "local"
OPSCENTER_STORAGE_BACKEND = STORAGE_BACKEND_ALIASES.get(
    OPSCENTER_STORAGE_BACKEND, OPSCENTER_STORAGE_BACKEND
)
try:
    _storage_options = json.loads(os.environ.get("OPSCENTER_STORAGE_OPTIONS") or "{}")
except json.JSONDecodeError as _exc:
    raise ImproperlyConfigured(f"OPSCENTER_STORAGE_OPTIONS: not a JSON object: {_exc}") from None
if not isinstance(_storage_options, dict):
    raise ImproperlyConfigured("OPSCENTER_STORAGE_OPTIONS: not a JSON object")
if OPSCENTER_STORAGE_BACKEND == STORAGE_BACKEND_ALIASES["local"]:
    # Readable by everyone on the machine: attempts may run as OPSCENTER_RUN_AS.
    _storage_options = {
        "location": str(OPSCENTER_STORAGE_DIR),
        "file_permissions_mode": 0o644,
        "directory_permissions_mode": 0o755,
        **_storage_options,
    }
# The largest resource file an upload may store.
OPSCENTER_RESOURCE_MAX_BYTES = envint("OPSCENTER_RESOURCE_MAX_BYTES", 100 * 1024 * 1024)
STORAGES = {
    "default": {"BACKEND": OPSCENTER_STORAGE_BACKEND, "OPTIONS": _storage_options},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# Email notifications go through Django's backend: set EMAIL_BACKEND to
# django.core.mail.backends.smtp.EmailBackend and EMAIL_HOST & co. to send for real.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envfloat("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "opscenter@localhost")

# --- django-q2 -------------------------------------------------------------------
# Every resource group is a django-q2 queue of the same name; a worker cluster serves
# one group when started with Q_CLUSTER_NAME=<group>. The "default" cluster also runs
# the schedules (nightly generator, dispatcher loop).
OPSCENTER_MAX_RUNTIME = envint("OPSCENTER_MAX_RUNTIME", 24 * 3600)
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": "default",
    "workers": envint("Q_WORKERS", 4),
    "recycle": 500,
    # Instance time limits are enforced by opscenter itself; this only bounds a task
    # that hangs beyond any instance's limit. retry must stay above timeout, or the
    # broker hands a running task out a second time.
    "timeout": OPSCENTER_MAX_RUNTIME,
    "retry": OPSCENTER_MAX_RUNTIME + 600,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "poll": envfloat("Q_POLL", 0.2),
    "label": "Task queue",
    # Read by django-q2 when a cluster is started with Q_CLUSTER_NAME=<group>; must exist.
    "ALT_CLUSTERS": {},
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
if envbool("Q_SYNC", False):
    Q_CLUSTER["sync"] = True
# Each cluster's status (its heartbeat, read by the resource group pages) lives in Redis
# with the Redis broker; with the ORM broker in this cache: a file cache in the runtime
# directory, which every process of this machine reads.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "django_q": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "django_q_status"),
    },
}
Q_CLUSTER["cache"] = "django_q"

# --- opscenter ------------------------------------------------------------------------
# Resource groups that share a django-q2 queue instead of each having their own cluster
# (small groups on few machines): "group=queue,group=queue". Limits stay per group: the
# dispatcher enforces them, whichever queue carries the work.
OPSCENTER_GROUP_QUEUES = dict(
    pair.split("=", 1) for pair in os.environ.get("OPSCENTER_GROUP_QUEUES", "").split(",") if pair
)
# Seconds between heartbeats of a running attempt, and how long without one before
# the attempt's worker is declared lost.
OPSCENTER_HEARTBEAT_SECONDS = envfloat("OPSCENTER_HEARTBEAT_SECONDS", 5)
OPSCENTER_HEARTBEAT_TIMEOUT = envfloat("OPSCENTER_HEARTBEAT_TIMEOUT", 60)
# The health page shows a django-q2 cluster or a realtime supervisor as dead when its
# last heartbeat is older than this, and forgets a cluster not seen for the hours after.
OPSCENTER_CLUSTER_DEAD_SECONDS = envfloat("OPSCENTER_CLUSTER_DEAD_SECONDS", 30)
OPSCENTER_CLUSTER_FORGET_HOURS = envint("OPSCENTER_CLUSTER_FORGET_HOURS", 24)
# A queued instance that no worker has taken after this long (its task was lost with a
# crashed cluster) is handed out again by the dispatcher.
OPSCENTER_QUEUED_TIMEOUT_SECONDS = envfloat("OPSCENTER_QUEUED_TIMEOUT_SECONDS", 300)
# How often the dispatcher loop looks for instances whose time has come.
OPSCENTER_TICK_SECONDS = envfloat("OPSCENTER_TICK_SECONDS", 2)
# Virtual instances (which run nothing) go to workers in batches of up to this many, one
# django-q2 task and one transaction per batch; 1 sends each alone.
OPSCENTER_VIRTUAL_BATCH = envint("OPSCENTER_VIRTUAL_BATCH", 50)
# How often the monitor loop reads the instance event outbox (failures, successes).
OPSCENTER_MONITOR_POLL_SECONDS = envfloat("OPSCENTER_MONITOR_POLL_SECONDS", 1)
# Days the processed instance events (the record of every state change) are kept.
OPSCENTER_EVENT_RETENTION_DAYS = envint("OPSCENTER_EVENT_RETENTION_DAYS", 14)
# Seconds a stopped process gets between SIGTERM and SIGKILL.
OPSCENTER_KILL_GRACE_SECONDS = envfloat("OPSCENTER_KILL_GRACE_SECONDS", 5)
# Keys that encrypt secrets at rest (datasource passwords, channel secrets), apart from
# SECRET_KEY: comma-separated Fernet keys, the newest first. The newest encrypts; every one
# decrypts, so a new key goes in front and `opscenter encryption rotate` re-encrypts what
# is stored, after which the old ones can go. Required in production; development (DEBUG
# on) without it uses a key derived from SECRET_KEY.
OPSCENTER_ENCRYPTION_KEYS = envlist("OPSCENTER_ENCRYPTION_KEY")
for _number, _key in enumerate(OPSCENTER_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            f"OPSCENTER_ENCRYPTION_KEY: key {_number} is not a Fernet key (32 url-safe "
            "base64-encoded bytes; make one with `python -c 'from cryptography.fernet import "
            "Fernet; print(Fernet.generate_key().decode())'`)"
        ) from None
if not DEBUG and not OPSCENTER_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "OPSCENTER_ENCRYPTION_KEY is not set: in production (DEBUG off) secrets are encrypted "
        "with a key of their own, not one derived from SECRET_KEY. Make one with `python -c "
        "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`; "
        "secrets stored before are re-encrypted with it by `opscenter encryption rotate`."
    )
# Attempts (their scripts and every process they start) run as this unprivileged OS user
# when set; the worker must then run as root (it switches user for each attempt). Empty:
# attempts run as the worker's own user.
OPSCENTER_RUN_AS = os.environ.get("OPSCENTER_RUN_AS", "").strip()
# Where opscenter's pages are reached from outside: notifications link to them.
OPSCENTER_BASE_URL = os.environ.get("OPSCENTER_BASE_URL", "http://localhost:8000")
# Notification deliveries: seconds before the first retry (doubling each time), tries in
# all (at least 3), and how long one HTTP request to a channel may take.
OPSCENTER_DELIVERY_BACKOFF_SECONDS = envfloat("OPSCENTER_DELIVERY_BACKOFF_SECONDS", 30)
OPSCENTER_DELIVERY_MAX_TRIES = envint("OPSCENTER_DELIVERY_MAX_TRIES", 5)
OPSCENTER_DELIVERY_TIMEOUT_SECONDS = envfloat("OPSCENTER_DELIVERY_TIMEOUT_SECONDS", 10)
# Backup archives brought in (upload, `opscenter restore FILE`) are refused before they are
# unpacked when larger than OPSCENTER_BACKUP_MAX_BYTES, holding more members than
# OPSCENTER_BACKUP_MAX_MEMBERS, or inflating past OPSCENTER_BACKUP_MAX_UNCOMPRESSED_BYTES.
OPSCENTER_BACKUP_MAX_BYTES = envint("OPSCENTER_BACKUP_MAX_BYTES", 1024**3)
OPSCENTER_BACKUP_MAX_MEMBERS = envint("OPSCENTER_BACKUP_MAX_MEMBERS", 100_000)
OPSCENTER_BACKUP_MAX_UNCOMPRESSED_BYTES = envint(
    "OPSCENTER_BACKUP_MAX_UNCOMPRESSED_BYTES", 10 * 1024**3
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
