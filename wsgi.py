"""The WSGI entry point (`gunicorn wsgi:app`): the app, with its model load and job workers.

Schema commands use the factory instead (`flask --app app:create_app db upgrade`): importing this
module starts background threads, which a migration must not run.
"""

from app import create_app, start_background

app = create_app()
start_background(app)
