#!/bin/sh
# Serve: bring the schema up to date, then hand the process to gunicorn (logs on stdout).
# The container's entry point and `make serve` both run this.
set -e
# The factory, not wsgi.py: importing wsgi starts the model load and the job workers, and the
# workers would query tables the migration has not made yet.
flask --app app:create_app db upgrade
exec gunicorn -c gunicorn.conf.py wsgi:app
