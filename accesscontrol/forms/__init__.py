"""The operator web app's forms, one module per area."""
