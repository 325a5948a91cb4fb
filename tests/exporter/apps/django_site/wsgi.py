"""``tests.exporter.apps.django_site.wsgi:application``, instrumented as the docs say."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.exporter.apps.django_site.settings")

from django.core.wsgi import get_wsgi_application

from hlthz.exporter import instrument

application = instrument(get_wsgi_application())
