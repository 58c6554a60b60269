"""The HTTP API: one blueprint module per resource."""

from flask import Flask


def register_blueprints(app: Flask, api) -> None:
    """Register every blueprint on the flask-smorest `api`."""
    from app.api import health

    api.register_blueprint(health.blp)
