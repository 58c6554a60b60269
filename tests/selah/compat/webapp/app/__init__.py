"""The stand-in web app's factory: Flask-SQLAlchemy on DATABASE_URL, its routes."""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


def create_app() -> Flask:
    """The app, its tables created."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    db.init_app(app)
    from app import models  # noqa: F401 - the tables
    from app.routes import bp

    app.register_blueprint(bp)
    with app.app_context():
        db.create_all()
    return app
