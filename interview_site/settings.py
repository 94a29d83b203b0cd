"""Settings read from the environment, with embedded defaults that run on one machine.

With no variables set: SQLite, the in-memory channel layer, local speech providers and
demo tokens signed by a local key. `DATABASE_URL`, `REDIS_URL` and `SUPABASE_URL` switch
to the production parts.
"""

import importlib.util
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# supabase-py depends on a PyPI package also named `realtime`; when daphne is started by
# its console script the project directory is not first on sys.path and that package
# would shadow ours. Put the project first before any app is imported.
_realtime = importlib.util.find_spec("realtime")
if _realtime is None or Path(str(_realtime.origin)) != BASE_DIR / "realtime" / "__init__.py":
    sys.path.insert(0, str(BASE_DIR))
    sys.modules.pop("realtime", None)
    importlib.invalidate_caches()
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite database and the demo signing key live here


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEMO_SECRET_KEY = "embedded-demo-secret-key-change-me-in-production"
# "production" refuses to start with the demo secret key or DEBUG on; "demo" (the
# default) runs with no configuration at all.
DJANGO_ENV = os.environ.get("DJANGO_ENV", "demo").strip().lower()
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", DEMO_SECRET_KEY)
if DJANGO_ENV not in {"demo", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'demo' or 'production', not {DJANGO_ENV!r}.")
if DJANGO_ENV == "production":
    if SECRET_KEY == DEMO_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured("DJANGO_ENV=production needs DJANGO_SECRET_KEY: 32 or more random characters "
                                   "of your own (the embedded demo key is public).")
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_ENV=production refuses DJANGO_DEBUG: it shows code and settings to anyone.")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",  # API tokens for services (manage.py drf_create_token <staff user>)
    "drf_spectacular",
    "interviews",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "interview_site.urls"
ASGI_APPLICATION = "interview_site.asgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
# Threads that run the realtime code's database calls on PostgreSQL (realtime/db.py).
DATABASE_THREADS = env_int("DATABASE_THREADS", 8)
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # An unreachable server must fail a handshake in seconds (a clear "try again"), not hang it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 3))
    # Each database thread keeps its connection (realtime/db.py: a bounded pool of threads),
    # not a new one per call: a rolling restart hands a worker all of another's
    # candidates at once, each joining with a few queries. A kept connection is checked
    # before use, so one left broken by a database restart is replaced, not handed to a
    # candidate. (Not psycopg's pool: after an outage it backs off for seconds before it
    # connects again, refusing candidates meanwhile.)
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 300)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several threads write turns while a session runs; wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # An answer is acknowledged once committed: in WAL mode a commit survives a crash of the
    # process without an fsync each time (about 12 ms -> 1 ms a write on this machine).
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    # Sessions write from several threads: take the write lock when a transaction begins,
    # so a writer waits its turn (the timeout above) instead of failing with "locked".
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py reads with a 5 s timeout by default, the same as channels-redis's
            # blocking receive: idle consumers then die with "Timeout reading". Allow more.
            # Its pools also refuse a 101st concurrent command ("Too many connections"),
            # which a burst of a hundred sessions joining at once reaches.
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": env_float("REDIS_SOCKET_TIMEOUT_SECONDS", 15),
                        "max_connections": env_int("REDIS_MAX_CONNECTIONS", 1000),
                    }
                ],
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

# --- Auth: Supabase access tokens -------------------------------------------------------
# With SUPABASE_URL set, tokens are verified through <SUPABASE_URL>/auth/v1/.well-known/jwks.json
# (and the legacy HS256 secret when SUPABASE_JWT_SECRET is set). Without it, demo tokens
# are signed by a local EC key and verified through the same code path.
SUPABASE_URL = os.environ.get("SUPABASE_URL", "").rstrip("/")
SUPABASE_ANON_KEY = os.environ.get("SUPABASE_ANON_KEY", "")
SUPABASE_JWT_SECRET = os.environ.get("SUPABASE_JWT_SECRET", "")
JWT_ISSUER = f"{SUPABASE_URL or 'http://localhost'}/auth/v1"
JWT_AUDIENCE = os.environ.get("JWT_AUDIENCE", "authenticated")
JWT_LOCAL_KEY_PATH = Path(os.environ.get("JWT_LOCAL_KEY_PATH", VAR_DIR / "demo-jwt-key.pem"))
JWKS_CACHE_SECONDS = env_int("JWKS_CACHE_SECONDS", 600)
JWKS_FETCH_TIMEOUT_SECONDS = env_float("JWKS_FETCH_TIMEOUT_SECONDS", 5.0)
# --- Supabase as the source of sessions and questions (interviews/supabase_source.py) ----
# With SUPABASE_URL and SUPABASE_ANON_KEY set, a candidate's session and its questions are
# read from Supabase with the candidate's own token (row level security applies) and
# mirrored into the local models; without them, the local models are the source.
SUPABASE_SOURCE_ENABLED = bool(SUPABASE_URL and SUPABASE_ANON_KEY)
# The service-role (secret) key, for writing status and results back; unset: no write-back.
SUPABASE_SERVICE_ROLE_KEY = os.environ.get("SUPABASE_SERVICE_ROLE_KEY", "")
# A handshake waits at most this long for Supabase, retries included.
SUPABASE_DEADLINE_SECONDS = env_float("SUPABASE_DEADLINE_SECONDS", 3.0)
SUPABASE_WRITEBACK_ATTEMPTS = env_int("SUPABASE_WRITEBACK_ATTEMPTS", 5)
DEMO_USER_ID = os.environ.get("DEMO_USER_ID", "00000000-0000-4000-8000-000000000001")
DEMO_BASE_URL = os.environ.get("DEMO_BASE_URL", "http://127.0.0.1:8000")


def _default_origins(base_url: str) -> str:
    """The page's own origin, reached as 127.0.0.1 or as localhost."""
    parsed = urlparse(base_url)
    origins = {f"{parsed.scheme}://{parsed.netloc}"}
    for a, b in (("127.0.0.1", "localhost"), ("localhost", "127.0.0.1")):
        if parsed.hostname == a:
            origins.add(f"{parsed.scheme}://{parsed.netloc.replace(a, b)}")
    return ",".join(sorted(origins))


# Browsers send the Origin of the page: scheme, host and port must all match one of these.
WEBSOCKET_ALLOWED_ORIGINS = env_list("WEBSOCKET_ALLOWED_ORIGINS", _default_origins(DEMO_BASE_URL))
for _origin in WEBSOCKET_ALLOWED_ORIGINS:
    if "://" not in _origin:
        raise ImproperlyConfigured(
            f"WEBSOCKET_ALLOWED_ORIGINS needs full origins such as https://interview.example.com, not {_origin!r}: "
            "a bare host would accept any scheme and port."
        )

# --- Realtime limits and timing ----------------------------------------------------------
REALTIME = {
    "AUTH_TIMEOUT_SECONDS": env_float("REALTIME_AUTH_TIMEOUT_SECONDS", 10.0),
    "MAX_MESSAGE_BYTES": env_int("REALTIME_MAX_MESSAGE_BYTES", 64 * 1024),
    # PCM16 at 16 kHz is 32000 B/s; allow twice real time with a two-second burst.
    "AUDIO_BYTES_PER_SECOND": env_int("REALTIME_AUDIO_BYTES_PER_SECOND", 64000),
    "AUDIO_BURST_SECONDS": env_float("REALTIME_AUDIO_BURST_SECONDS", 2.0),
    # Dropped audio is tolerated at up to half the allowed rate again, in bursts of this
    # many bytes; a client that sends faster than that for long is closed (4029).
    "AUDIO_ABUSE_BYTES": env_int("REALTIME_AUDIO_ABUSE_BYTES", 256000),
    "INPUT_SAMPLE_RATE": env_int("REALTIME_INPUT_SAMPLE_RATE", 16000),
    "OUTPUT_SAMPLE_RATE": env_int("REALTIME_OUTPUT_SAMPLE_RATE", 24000),
    "SPEECH_CHUNK_MS": env_int("REALTIME_SPEECH_CHUNK_MS", 40),
    # How far sent speech may run ahead of real time: small, so an interrupt leaves little unplayed.
    "SPEECH_LEAD_MS": env_int("REALTIME_SPEECH_LEAD_MS", 240),
    "END_OF_UTTERANCE_SILENCE_MS": env_int("REALTIME_END_OF_UTTERANCE_SILENCE_MS", 700),
    # The embedded recognisers' end of turn: "adaptive" (realtime/turn_taking.py: short
    # after a finished sentence, long after "and", "um" or a half-said clause) or "fixed"
    # (END_OF_UTTERANCE_SILENCE_MS whatever was said).
    "TURN_TAKING": os.environ.get("REALTIME_TURN_TAKING", "adaptive"),
    "VAD_MODE": env_int("REALTIME_VAD_MODE", 2),
    "MIN_INTERRUPTION_WORDS": env_int("REALTIME_MIN_INTERRUPTION_WORDS", 2),
    "LLM_DEADLINE_SECONDS": env_float("REALTIME_LLM_DEADLINE_SECONDS", 8.0),
    "TTS_DEADLINE_SECONDS": env_float("REALTIME_TTS_DEADLINE_SECONDS", 8.0),
    "STT_DEADLINE_SECONDS": env_float("REALTIME_STT_DEADLINE_SECONDS", 5.0),
    "AUDIO_QUEUE_CHUNKS": env_int("REALTIME_AUDIO_QUEUE_CHUNKS", 200),
    # Every frame counts against a message rate (40 ms audio is 25 a second), changes of
    # state (pause, resume, interrupt, a typed answer, end) against a stricter one.
    "MESSAGES_PER_SECOND": env_float("REALTIME_MESSAGES_PER_SECOND", 100),
    "MESSAGE_BURST": env_int("REALTIME_MESSAGE_BURST", 200),
    "CONTROL_MESSAGES_PER_SECOND": env_float("REALTIME_CONTROL_MESSAGES_PER_SECOND", 5),
    "CONTROL_BURST": env_int("REALTIME_CONTROL_BURST", 10),
    # Frames read from the socket but not yet handled; more means the client outruns us.
    "INBOUND_BACKLOG_MESSAGES": env_int("REALTIME_INBOUND_BACKLOG_MESSAGES", 256),
    # How long a write may be retried while the database is unreachable; a candidate's
    # answer is acknowledged only once it is stored, or refused after this.
    "WRITE_RETRY_SECONDS": env_float("REALTIME_WRITE_RETRY_SECONDS", 10.0),
    # A worker renews the leases of its live sessions every third of this; a live session
    # whose lease ran out (its worker died) is marked disconnected (realtime/leases.py). 0: off.
    "LEASE_SECONDS": env_float("REALTIME_LEASE_SECONDS", 15.0),
    # A client that stops reading: above this many unsent bytes nothing more is produced
    # for it, and it is closed (4015) if it has not caught up within SLOW_READER_SECONDS.
    "OUTBOUND_HIGH_WATER_BYTES": env_int("REALTIME_OUTBOUND_HIGH_WATER_BYTES", 512 * 1024),
    "SLOW_READER_SECONDS": env_float("REALTIME_SLOW_READER_SECONDS", 10.0),
    # What the kernel may queue per client socket (about 30 s of speech); fixed, not autotuned.
    "SOCKET_SEND_BUFFER_BYTES": env_int("REALTIME_SOCKET_SEND_BUFFER_BYTES", 256 * 1024),
    # Provider set (docs/providers.md): a preset ("local", "openai", "synthetic") or a
    # speech-to-speech provider ("openai-realtime", "gemini-live"); REALTIME_STT/LLM/TTS
    # replace one role of a preset. Checked at start-up (realtime.providers.registry).
    "PROVIDERS": os.environ.get("REALTIME_PROVIDERS", "local"),
    "STT": os.environ.get("REALTIME_STT", ""),
    "LLM": os.environ.get("REALTIME_LLM", ""),
    "TTS": os.environ.get("REALTIME_TTS", ""),
    # Short follow-ups an LLM interviewer may ask on one main question when an answer is thin.
    "FOLLOW_UPS_PER_QUESTION": env_int("REALTIME_FOLLOW_UPS_PER_QUESTION", 1),
    # Start the reply when the recogniser foresees the end of the turn (held until it ends).
    "SPECULATIVE_REPLY": bool(env_int("REALTIME_SPECULATIVE_REPLY", 1)),
    # Main questions drafted by the interviewer for an interview that lists skills only.
    "DRAFTED_QUESTIONS": env_int("REALTIME_DRAFTED_QUESTIONS", 5),
    # Evaluation by the language model after a session ends (in the background).
    "EVALUATION_ATTEMPTS": env_int("REALTIME_EVALUATION_ATTEMPTS", 3),
    "EVALUATION_DEADLINE_SECONDS": env_float("REALTIME_EVALUATION_DEADLINE_SECONDS", 60.0),
    # Opt-in socket-operation log: every message's type, size and timing per connection
    # (logger realtime.socketlog), both dialects; never tokens, audio or answer text.
    "LOG_MESSAGES": env_bool("REALTIME_LOG_MESSAGES", False),
    # The text-era socket (/ws): how long its signed question-audio links stay valid, where
    # rendered lines are kept (default VAR_DIR/question-audio) and how many, and how long
    # the socket stays open after the end for a pending language-model analysis.
    "QUESTION_AUDIO_URL_SECONDS": env_int("REALTIME_QUESTION_AUDIO_URL_SECONDS", 2 * 3600),
    "QUESTION_AUDIO_DIR": os.environ.get("REALTIME_QUESTION_AUDIO_DIR", ""),
    "QUESTION_AUDIO_CACHE_FILES": env_int("REALTIME_QUESTION_AUDIO_CACHE_FILES", 5000),
    "QUESTION_AUDIO_RENDER_SECONDS": env_float("REALTIME_QUESTION_AUDIO_RENDER_SECONDS", 30.0),
    "RESULTS_WAIT_SECONDS": env_float("REALTIME_RESULTS_WAIT_SECONDS", 120.0),
}

# Operators' JSON view of a worker (/api/ops/stats); off unless a token is set.
REALTIME_OPS_TOKEN = os.environ.get("REALTIME_OPS_TOKEN", "")

LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")  # or "json": one object a line, for log collectors
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "realtime.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": os.environ.get("ACCESS_LOG_LEVEL", "WARNING")},
        "daphne": {"level": "WARNING"},
    },
}

# --- REST API (interviews/api, docs/recruiters.md) -------------------------------------------
# Staff sign in with the admin's session or a service token ("Authorization: Token <key>");
# a candidate's Supabase (or demo) access token ("Authorization: Bearer <jwt>") reads only
# their own sessions. The JWT class lives in realtime/, where the verifier is.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The first one names the scheme of a 401's WWW-Authenticate (the session one has none).
        "rest_framework.authentication.TokenAuthentication",
        "realtime.api_auth.CandidateTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["interviews.api.permissions.StaffOrCandidate"],
    "DEFAULT_PAGINATION_CLASS": "interviews.api.pagination.SessionPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.URLPathVersioning",
    "ALLOWED_VERSIONS": ["v1"],
    "DEFAULT_VERSION": "v1",
    "EXCEPTION_HANDLER": "interviews.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Interview platform API",
    "DESCRIPTION": "Sessions, transcripts and results for the platform around the realtime core "
                   "(docs/recruiters.md).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}
