"""`interpserve bench`: load-test an endpoint, or sweep an app over worker counts.

Imported only by that subcommand, never by the server.
"""
