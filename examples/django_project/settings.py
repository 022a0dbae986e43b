"""Settings for the example Django project.

Environment:
    DJANGO_DB_PATH   the SQLite file (default: interpserve-django-example.sqlite3 in the temp dir);
                     every worker shares it
    DJANGO_DEBUG     "1" turns DEBUG on
"""

import os
import tempfile
from pathlib import Path

DB_PATH = Path(
    os.environ.get("DJANGO_DB_PATH")
    or Path(tempfile.gettempdir()) / "interpserve-django-example.sqlite3"
)

SECRET_KEY = "interpserve-example-not-a-secret"
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["examples.django_project.notes"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "examples.django_project.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DB_PATH),
        # Several workers write to one file: wait for the lock rather than fail at once.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
