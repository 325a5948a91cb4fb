"""Settings of the test project; the SQLite file comes from ``HLTHZ_TEST_DB``."""

import os

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SECRET_KEY = "test-only-not-secret"
ROOT_URLCONF = "tests.exporter.apps.django_site.urls"
USE_TZ = True
SITE_ID = 1
LOGGING_CONFIG = None
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.sites",
    "rest_framework",
    "tests.exporter.apps.django_site.apps.SiteConfig",
    "actstream",
]
MIDDLEWARE = [
    # First: counts every query Django runs for the request, the oracle the test compares with.
    "tests.exporter.apps.django_site.middleware.query_count",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("HLTHZ_TEST_DB", "db.sqlite3"),
    }
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # base.html, which the app's templates extend: a project provides it.
        "DIRS": [os.path.join(os.path.dirname(__file__), "templates")],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
REST_FRAMEWORK = {"DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]}
ACTSTREAM_SETTINGS = {
    "DRF": {
        "PERMISSIONS": ["rest_framework.permissions.AllowAny"],
        "MODEL_FIELDS": {"auth.user": ["id", "username"]},
    }
}
