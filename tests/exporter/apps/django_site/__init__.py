"""A Django project around a third-party app, django-activity-stream (its own URLs, views, feeds
and DRF router API), served by gunicorn in test_real_apps.py.

Only the glue is ours: settings, the project URLconf, registering ``auth.User`` with the app,
seeding, and a middleware that reports Django's own count of the request's queries.
"""
