"""EOMS settings: every value comes from the environment, with defaults that run the embedded demo.

See README.md ("Configuration") for the table of variables.
"""

import secrets
from pathlib import Path

import environ

env = environ.Env()

BASE_DIR = Path(__file__).resolve().parent
MODE = env("EOMS_MODE", default="development")  # development | production
PRODUCTION = MODE == "production"
DATA_DIR = Path(env("EOMS_DATA_DIR", default=str(BASE_DIR.parent / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env("EOMS_SECRET_KEY", default="")
    if key:
        return key
    if PRODUCTION:
        return ""  # refused below, with every other production problem
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Key of the audit chain's HMAC; derived from SECRET_KEY when empty. Keep it apart from SECRET_KEY in production.
EOMS_AUDIT_KEY = env("EOMS_AUDIT_KEY", default="")
DEBUG = env.bool("EOMS_DEBUG", default=False)
ALLOWED_HOSTS = env.list("EOMS_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("EOMS_CSRF_TRUSTED_ORIGINS", default=[])
# Only requests arriving from these addresses may tell us the client's IP in X-Forwarded-For.
TRUSTED_PROXIES = env.list("EOMS_TRUSTED_PROXIES", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "ninja",
    "eoms.core",
    "eoms.accounts",
    "eoms.masterdata",
    "eoms.orders",
    "eoms.approvals",
    "eoms.notifications",
    "eoms.webhooks",
    "eoms.reports",
    "eoms.oauth",  # before oauth2_provider: its consent template is ours
    "oauth2_provider",
]

MIDDLEWARE = [
    "eoms.core.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "eoms.core.middleware.SecurityHeadersMiddleware",
    "eoms.core.middleware.RequestContextMiddleware",
    "eoms.core.ratelimit.ApiRateLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "eoms.accounts.twofactor.TwoFactorMiddleware",
    "eoms.core.middleware.PageMessageMiddleware",  # Django's MessageMiddleware, skipped by the JSON API
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "eoms.urls"
WSGI_APPLICATION = "eoms.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "eoms.core.web.context",
                "eoms.approvals.context_processors.approvals",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'eoms.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers work while one writer commits; IMMEDIATE takes the write lock at BEGIN so two
    # writers queue instead of deadlocking on a lock upgrade.
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
    )
elif _db["ENGINE"] == "django.db.backends.mysql":
    _db.setdefault("OPTIONS", {}).update(
        {"charset": "utf8mb4", "isolation_level": "read committed", "init_command": "SET sql_mode='STRICT_ALL_TABLES'"}
    )
    _db.setdefault("TEST", {}).update({"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"})
elif _db["ENGINE"] == "django.db.backends.postgresql" and env.bool("EOMS_DB_SERVER_SIDE_BINDING", default=True):
    # Parameters travel apart from the statement, and psycopg prepares a statement on a connection
    # once it has run there prepare_threshold times: PostgreSQL then skips parsing and planning it
    # (decision 0021). Pays off with persistent connections (EOMS_DB_CONN_MAX_AGE, 60 s in deploy/).
    _db.setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 2})
_db.setdefault("CONN_MAX_AGE", env.int("EOMS_DB_CONN_MAX_AGE", default=0))
_db.setdefault("CONN_HEALTH_CHECKS", True)  # a persistent connection is checked before a request reuses it
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    # Short socket timeouts: an unreachable Redis makes /readyz say "degraded" at once instead of hanging.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Observability (eoms.core.health, eoms.core.metrics): /readyz checks the broker when BROKER_URL is set
# (unset: the relay delivers in-process); /metrics answers only with `Authorization: Bearer <token>`
# and is not there at all (404) while EOMS_METRICS_TOKEN is unset.
BROKER_URL = env("BROKER_URL", default="")
EOMS_METRICS_TOKEN = env("EOMS_METRICS_TOKEN", default="")

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_HASHERS = [
    "eoms.accounts.hashers.Argon2PasswordHasher",  # Argon2id, 12 MiB, t=3, p=1; verifies any argon2 hash (0019)
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env("EOMS_LANGUAGE", default="zh-hans")
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("EOMS_TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env("EOMS_MEDIA_DIR", default=str(DATA_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SESSION_COOKIE_AGE = 60 * 60 * 12
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Failed sign-ins (eoms.accounts.throttling), counted in CACHES (Redis when REDIS_URL is set): this many
# failures for one username within the window lock it, this many from one address block the address,
# each for EOMS_LOGIN_LOCKOUT_SECONDS.
LOGIN_MAX_FAILURES_PER_ACCOUNT = env.int("EOMS_LOGIN_MAX_FAILURES_PER_ACCOUNT", default=5)
LOGIN_MAX_FAILURES_PER_IP = env.int("EOMS_LOGIN_MAX_FAILURES_PER_IP", default=20)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("EOMS_LOGIN_FAILURE_WINDOW_SECONDS", default=15 * 60)
LOGIN_LOCKOUT_SECONDS = env.int("EOMS_LOGIN_LOCKOUT_SECONDS", default=15 * 60)
LOGIN_THROTTLE_KEY_PREFIX = "eoms:login"
# API rate limits (eoms.core.ratelimit), counted in Redis when REDIS_URL is set: requests per window per
# client address, user, client (API token or OAuth2 client) and, for expensive endpoints, per caller.
# 0 turns a bucket off.
API_RATE_WINDOW_SECONDS = env.int("EOMS_API_RATE_WINDOW_SECONDS", default=60)
API_RATE_PER_IP = env.int("EOMS_API_RATE_PER_IP", default=1200)
API_RATE_PER_USER = env.int("EOMS_API_RATE_PER_USER", default=600)
API_RATE_PER_CLIENT = env.int("EOMS_API_RATE_PER_CLIENT", default=600)
API_RATE_EXPENSIVE = env.int("EOMS_API_RATE_EXPENSIVE", default=10)
API_RATE_KEY_PREFIX = "eoms:rate"
# Checkpoints of the audit chain's head (eoms.core.audit), appended by the periodic job every so many
# seconds and by `eoms audit checkpoint`; `eoms audit verify` requires the chain to reach them.
AUDIT_CHECKPOINT_FILE = Path(env("EOMS_AUDIT_CHECKPOINT_FILE", default=str(DATA_DIR / "audit-checkpoints.jsonl")))
AUDIT_CHECKPOINT_SECONDS = env.int("EOMS_AUDIT_CHECKPOINT_SECONDS", default=300)
# Two-factor authentication (eoms.accounts.twofactor): users holding one of these roles must set up an
# authenticator app (TOTP) before they can use EOMS. Production requires it of admin and finance by default;
# the embedded default (development, the demo) of no role, so the demo's printed logins keep working.
TWO_FACTOR_REQUIRED_ROLES = [
    r.strip()
    for r in env.list("EOMS_2FA_REQUIRED_ROLES", default=["admin", "finance"] if PRODUCTION else [])
    if r.strip()
]
if PRODUCTION:
    from eoms.core.production import refuse_insecure_settings

    refuse_insecure_settings(
        debug=DEBUG,
        secret_key=SECRET_KEY,
        audit_key=EOMS_AUDIT_KEY,
        database_engine=_db["ENGINE"],
        allow_sqlite=env.bool("EOMS_ALLOW_SQLITE", default=False),
        allowed_hosts_set=bool(env.list("EOMS_ALLOWED_HOSTS", default=[])),
    )
    SECURE_HSTS_SECONDS = env.int("EOMS_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("EOMS_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("EOMS_HSTS_PRELOAD", default=True)
    # Plain HTTP is redirected to HTTPS when users reach EOMS over HTTPS (EOMS_PUBLIC_URL https://…).
    # Probes and Prometheus call the pods directly over HTTP inside the network: never redirected.
    SECURE_SSL_REDIRECT = env.bool(
        "EOMS_SSL_REDIRECT", default=env("EOMS_PUBLIC_URL", default="").startswith("https://")
    )
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    if TRUSTED_PROXIES:
        # Believed only behind a proxy we were told about, which sets it on every request.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Attachments: size limit in MiB and the types accepted, recognised by content (magic bytes).
ATTACHMENT_MAX_MB = env.int("EOMS_ATTACHMENT_MAX_MB", default=20)
ATTACHMENT_TYPES = env.list(
    "EOMS_ATTACHMENT_TYPES",
    default=[
        "application/pdf",
        "image/jpeg",
        "image/png",
        "image/webp",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/zip",
    ],
)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Default days an order may stay in a stage, e.g. "QUOTING=10,PENDING_APPROVAL=3".
STAGE_DAYS = {k: int(v) for k, v in env.dict("EOMS_STAGE_DAYS", default={}).items()}
# Approval SLAs count working hours: these periods on working days of the official calendar (调休 included).
EOMS_WORKING_HOURS = env("EOMS_WORKING_HOURS", default="09:00-12:00,13:00-18:00")
EOMS_WORK_TIMEZONE = env("EOMS_WORK_TIMEZONE", default="Asia/Shanghai")
# The relay thread inside `eoms run` (embedded mode). Off in tests, which drive the relay directly.
RELAY_IN_PROCESS = env.bool("EOMS_RELAY_IN_PROCESS", default=True)
RELAY_INTERVAL = env.float("EOMS_RELAY_INTERVAL", default=1.0)
API_TOKEN_DEFAULT_DAYS = env.int("EOMS_API_TOKEN_DAYS", default=90)

# Structured logs (eoms.core.logs): JSON lines in production, key=value lines for a console elsewhere;
# EOMS_LOG_FORMAT=json|console overrides. One stderr handler for structlog and every stdlib logger.
from eoms.core.logs import log_format, logging_config  # noqa: E402

LOGGING = logging_config(
    fmt=log_format(env("EOMS_LOG_FORMAT", default=""), production=PRODUCTION),
    level=env("EOMS_LOG_LEVEL", default="INFO"),
)

# oauthlib and django-oauth-toolkit write tokens, codes and request bodies in their debug lines: never
# below WARNING, whatever EOMS_LOG_LEVEL says (eoms.oauth audits what matters, without token values).
for _logger in ("oauthlib", "oauth2_provider"):
    LOGGING["loggers"][_logger] = {"handlers": [], "level": "WARNING", "propagate": True}

NINJA_PAGINATION_PER_PAGE = 50

# Events over RabbitMQ (eoms.core.broker, docs/decisions/0007): with BROKER_URL set (amqp://…) the relay
# publishes outbox messages to the topic exchange "<namespace>.events" with publisher confirms, and
# `eoms worker` consumes them (manual acks, EOMS_BROKER_PREFETCH unacked at a time); a message whose
# handlers fail is retried after EOMS_BROKER_RETRY_DELAY seconds, four times longer each time, and is
# dead-lettered after EOMS_BROKER_MAX_ATTEMPTS attempts. `eoms beat` schedules the periodic jobs.
# Unset: the relay calls the handlers in-process and runs the periodic jobs itself.
BROKER_NAMESPACE = env("EOMS_BROKER_NAMESPACE", default="eoms")
BROKER_PREFETCH = env.int("EOMS_BROKER_PREFETCH", default=16)
BROKER_MAX_ATTEMPTS = env.int("EOMS_BROKER_MAX_ATTEMPTS", default=5)
BROKER_RETRY_DELAY = env.float("EOMS_BROKER_RETRY_DELAY", default=2.0)
BROKER_CONFIRM_TIMEOUT = env.float("EOMS_BROKER_CONFIRM_TIMEOUT", default=10.0)

# Notifications (eoms.notifications). Email goes through SMTP when EOMS_EMAIL_HOST is set (else only the
# in-app inbox is used); EOMS_EMAIL_USE_TLS is STARTTLS, EOMS_EMAIL_USE_SSL implicit TLS (port 465).
# Links in messages start with EOMS_PUBLIC_URL, the address users reach EOMS at. A delivery that fails
# is retried with backoff (1 min, doubling, at most 1 h apart) up to EOMS_NOTIFY_MAX_ATTEMPTS attempts.
EMAIL_BACKEND = env("EOMS_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EOMS_EMAIL_HOST", default="")
EMAIL_PORT = env.int("EOMS_EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EOMS_EMAIL_USER", default="")
EMAIL_HOST_PASSWORD = env("EOMS_EMAIL_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EOMS_EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EOMS_EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.float("EOMS_EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env("EOMS_EMAIL_FROM", default="EOMS <eoms@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
NOTIFY_EMAIL = bool(EMAIL_HOST)
PUBLIC_URL = env("EOMS_PUBLIC_URL", default="http://localhost:8000").rstrip("/")
NOTIFY_MAX_ATTEMPTS = env.int("EOMS_NOTIFY_MAX_ATTEMPTS", default=8)
# Group robots (a message to EOMS's group chat mentioning the recipient's mobile number): DingTalk with
# EOMS_DINGTALK_WEBHOOK (…/robot/send?access_token=…) and, when the robot signs, EOMS_DINGTALK_SECRET (SEC…);
# WeCom with EOMS_WECOM_WEBHOOK (…/webhook/send?key=…). Text messages: EOMS_SMS_PROVIDER=aliyun (Alibaba
# Cloud SendSms with EOMS_SMS_ALIYUN_ACCESS_KEY_ID/SECRET, EOMS_SMS_SIGN_NAME, EOMS_SMS_TEMPLATE_CODE whose
# template has a ${title} variable) or console (written to the log, for development). Unset: channel off.
DINGTALK_WEBHOOK = env("EOMS_DINGTALK_WEBHOOK", default="")
DINGTALK_SECRET = env("EOMS_DINGTALK_SECRET", default="")
WECOM_WEBHOOK = env("EOMS_WECOM_WEBHOOK", default="")
SMS_PROVIDER = env("EOMS_SMS_PROVIDER", default="")
SMS_ALIYUN_ACCESS_KEY_ID = env("EOMS_SMS_ALIYUN_ACCESS_KEY_ID", default="")
SMS_ALIYUN_ACCESS_KEY_SECRET = env("EOMS_SMS_ALIYUN_ACCESS_KEY_SECRET", default="")
SMS_ALIYUN_REGION = env("EOMS_SMS_ALIYUN_REGION", default="cn-hangzhou")
SMS_ALIYUN_ENDPOINT = env("EOMS_SMS_ALIYUN_ENDPOINT", default="https://dysmsapi.aliyuncs.com")
SMS_SIGN_NAME = env("EOMS_SMS_SIGN_NAME", default="")
SMS_TEMPLATE_CODE = env("EOMS_SMS_TEMPLATE_CODE", default="")
NOTIFY_HTTP_TIMEOUT = env.float("EOMS_NOTIFY_HTTP_TIMEOUT", default=10.0)
# Field-level encryption (eoms.core.crypto, docs/decisions/0009): EOMS_FIELD_KEYS is the keyring
# "k2:<base64 32 bytes>,k1:<base64 32 bytes>" (the first seals, all open) and EOMS_BLIND_INDEX_KEY the
# separate HMAC key (base64, >= 32 bytes) of the exact-match search indexes. Unset in development: random
# keys are generated once in EOMS_DATA_DIR/field_keys. Production refuses to start without both.
FIELD_KEYS = env("EOMS_FIELD_KEYS", default="")
BLIND_INDEX_KEY = env("EOMS_BLIND_INDEX_KEY", default="")
if PRODUCTION:
    from eoms.core.production import refuse_missing_field_keys

    refuse_missing_field_keys(field_keys=FIELD_KEYS, blind_index_key=BLIND_INDEX_KEY)

# Webhooks (eoms.webhooks). Targets must be https and resolve to public addresses; EOMS_WEBHOOKS_ALLOW_PRIVATE
# lets an administrator send to loopback, private and link-local addresses (and over http there). A delivery
# is retried with backoff (30 s, doubling, at most 1 h apart) up to EOMS_WEBHOOKS_MAX_ATTEMPTS attempts; after
# EOMS_WEBHOOKS_PAUSE_AFTER deliveries in a row fail so, the webhook is paused. Requests time out after
# EOMS_WEBHOOKS_TIMEOUT seconds.
WEBHOOKS_ALLOW_PRIVATE = env.bool("EOMS_WEBHOOKS_ALLOW_PRIVATE", default=False)
WEBHOOKS_MAX_ATTEMPTS = env.int("EOMS_WEBHOOKS_MAX_ATTEMPTS", default=8)
WEBHOOKS_PAUSE_AFTER = env.int("EOMS_WEBHOOKS_PAUSE_AFTER", default=3)
WEBHOOKS_TIMEOUT = env.float("EOMS_WEBHOOKS_TIMEOUT", default=10.0)

# OAuth2 authorization server (eoms.oauth, django-oauth-toolkit, docs/decisions/0013): access tokens are
# EdDSA-signed JWTs (RFC 9068) of EOMS_OAUTH_ACCESS_TOKEN_SECONDS, signed by the first key of EOMS_JWT_KEYS
# ("j2:<base64 Ed25519 key>,j1:<…>"; every key listed verifies; unset in development: one generated once in
# EOMS_DATA_DIR/jwt_keys; production refuses to start without it). Refresh tokens rotate on every use and
# one presented again revokes its whole family; they die EOMS_OAUTH_REFRESH_TOKEN_SECONDS after their
# access token expires. Issuer: EOMS_PUBLIC_URL; audience: EOMS_PUBLIC_URL + "/api/v1".
JWT_KEYS = env("EOMS_JWT_KEYS", default="")
# However often it is rotated, a refresh token family ends this long after the user's consent.
OAUTH_REFRESH_TOKEN_MAX_SECONDS = env.int("EOMS_OAUTH_REFRESH_TOKEN_MAX_SECONDS", default=90 * 24 * 3600)
if PRODUCTION:
    from eoms.oauth.keys import refuse_missing_jwt_keys

    refuse_missing_jwt_keys(jwt_keys=JWT_KEYS)
# DOT's own models, named so that migrations pointing at them (eoms.oauth's) resolve the swappable settings.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_GENERATOR": "eoms.oauth.tokens.generate_access_token",
    "REFRESH_TOKEN_GENERATOR": "oauthlib.oauth2.rfc6749.tokens.random_token_generator",
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("EOMS_OAUTH_ACCESS_TOKEN_SECONDS", default=600),
    "REFRESH_TOKEN_EXPIRE_SECONDS": env.int("EOMS_OAUTH_REFRESH_TOKEN_SECONDS", default=30 * 24 * 3600),
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "PKCE_REQUIRED": True,
    "OAUTH2_SERVER_CLASS": "eoms.oauth.server.EomsServer",
    "OAUTH2_VALIDATOR_CLASS": "eoms.oauth.server.EomsValidator",
    "SCOPES_BACKEND_CLASS": "eoms.oauth.scopes.ClientScopes",
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"] if PRODUCTION else ["http", "https"],
    "REQUEST_APPROVAL_PROMPT": "force",
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,  # RFC 9207: the code's redirect names its issuer
    "OIDC_ISS_ENDPOINT": PUBLIC_URL,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "client_credentials", "refresh_token"],
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
}
