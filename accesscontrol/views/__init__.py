"""The operator web app: server-rendered pages, one module per area, on the shared base in ``base``."""
