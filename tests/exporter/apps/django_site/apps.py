from django.apps import AppConfig


class SiteConfig(AppConfig):
    name = "tests.exporter.apps.django_site"
    label = "django_site"

    def ready(self) -> None:
        from actstream import registry

        registry.register(self.apps.get_model("auth.User"))
