"""A minimal Django project: `interpserve examples.django_project.asgi:application`."""
