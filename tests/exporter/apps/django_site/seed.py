"""Create the tables and the site's data: 3 users, 6 public actions (``python -m ...seed``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.exporter.apps.django_site.settings")


def main() -> None:
    import django

    django.setup()
    from actstream import action
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    users = [User.objects.create_user(f"user{i}") for i in range(3)]
    users.append(User.objects.create_user("josé"))
    for i in range(6):
        action.send(users[i % 3], verb="posted", description=f"post {i}")
    users[0].actor_actions.all()  # registered with actstream: the relation exists


if __name__ == "__main__":
    main()
