"""The example project's only app: notes kept in SQLite."""
