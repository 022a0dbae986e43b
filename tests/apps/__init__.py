"""ASGI apps served by the end-to-end tests (imported by the server, never by pytest)."""
