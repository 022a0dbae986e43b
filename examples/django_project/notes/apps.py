from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "examples.django_project.notes"
    label = "notes"
    default_auto_field = "django.db.models.BigAutoField"
