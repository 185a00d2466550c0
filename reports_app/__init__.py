"""The monitoring reports page (``python -m reports_app``): see ``reports_app/README.md``."""
