"""interpserve examples.django_project.asgi:application --workers 2

The example Django project's ASGI entry point. Routes: `/` (text), `/notes/` (GET lists notes
as JSON; POST with a form field or JSON body `text` adds one). The SQLite file is DJANGO_DB_PATH
(default in the temp dir); its tables are created here on import, so no `migrate` step is needed.
Django does not do ASGI lifespan: it raises ValueError for a lifespan scope.

Static files: with DEBUG off (as here unless DJANGO_DEBUG=1, and as in production) Django serves
none, and neither does interpserve, so a project with `django.contrib.admin` gets the admin's
pages without their CSS and JavaScript (404s for /static/...). Serve them with one of: Django's
`ASGIStaticFilesHandler` around the application (with `django.contrib.staticfiles` installed it
finds them in the apps, as runserver does),

    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    application = ASGIStaticFilesHandler(get_asgi_application())

WhiteNoise (its middleware, serving STATIC_ROOT after `manage.py collectstatic`), or the reverse
proxy in front, from STATIC_ROOT.
"""

import fcntl
import os
import threading

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.management import call_command

application = get_asgi_application()


def _create_tables() -> None:
    """Run the migrations once per database file. Every worker (subinterpreter or process)
    imports this module; an exclusive flock on a file beside the database makes them take
    turns, and all but the first find nothing left to do."""
    db_path = os.fspath(settings.DB_PATH)
    os.makedirs(os.path.dirname(db_path) or ".", exist_ok=True)
    with open(db_path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _create_tables_in_thread() -> None:
    """Django refuses database work on a thread running an event loop, and the server may
    import this module from one: do it on a thread of its own and re-raise its error here."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _create_tables()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="django-create-tables")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


_create_tables_in_thread()
