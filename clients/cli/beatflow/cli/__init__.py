"""The ``beatflow`` command-line client (talks to the gateway's HTTP API only)."""
