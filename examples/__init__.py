"""Example ASGI apps to serve with interpserve; each module's docstring says how to run it."""
