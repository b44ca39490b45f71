"""Superset configuration for salespipe's local BI (loaded through SUPERSET_CONFIG_PATH).

Everything lives under SUPERSET_HOME (the project's .bi_home/ by default): the SQLite
metadata database, the generated secret key, the PID file and the log. Nothing here
reaches the network: no map tiles, no web fonts, no thumbnails or reports.
"""

import os
import secrets
from pathlib import Path

BI_HOME = Path(os.environ.get("SUPERSET_HOME") or Path(__file__).resolve().parent.parent / ".bi_home")
BI_HOME.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SUPERSET_SECRET_KEY, else a random key generated once and kept in BI_HOME.

    The key encrypts stored database passwords, so it must stay the same across restarts.
    """
    if os.environ.get("SUPERSET_SECRET_KEY"):
        return os.environ["SUPERSET_SECRET_KEY"]
    path = BI_HOME / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
SQLALCHEMY_DATABASE_URI = os.environ.get("SUPERSET_METADATA_URI") or f"sqlite:///{BI_HOME / 'superset.db'}"
DATA_DIR = str(BI_HOME)

# Chart data is not cached: the warehouse is local and small, and a load is visible at once.
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
# Offline: no Mapbox, no telemetry, no external thumbnails/screenshots.
MAPBOX_API_KEY = ""
FEATURE_FLAGS = {"THUMBNAILS": False, "ALERT_REPORTS": False, "ENABLE_TEMPLATE_PROCESSING": False}
# Bound to 127.0.0.1; the API is used by the bootstrap, the Dagster asset and the tests.
WTF_CSRF_ENABLED = True
# Same-origin only: the browser fetches nothing from elsewhere (the stock policy allows
# map tiles, web fonts and the scarf.sh usage pixel that the navbar always renders).
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}
RATELIMIT_ENABLED = False
AUTH_RATE_LIMITED = False
# The ISO week Superset computes starts on Monday; ours start on Sunday, so charts use
# week_start as it is stored and never a time grain.
