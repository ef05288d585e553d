"""The version of azml-client (one place; read by the package and the command line)."""

__version__ = "0.2.0.dev0"
