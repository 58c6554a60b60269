# Selah: the lyric analysis service, served by gunicorn on $PORT (5000).
#   docker build -t selah .
#   docker run -p 5000:5000 -v selah-data:/srv/selah/instance selah
# The embedded SQLite database lives in /srv/selah/instance; set DATABASE_URL for PostgreSQL.
FROM python:3.11-slim

# PyTorch for the gptoss backend's model, installed before the package so that pip keeps it: the
# CPU-only wheel from PyTorch's own index, because the PyPI wheel pulls in gigabytes of CUDA.
#   docker build --build-arg TORCH_VERSION=2.x.y -t selah .
ARG TORCH_VERSION="2.13.0"
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=5000 \
    HOST=0.0.0.0

RUN useradd --create-home --uid 1000 selah
WORKDIR /srv/selah

RUN if [ -n "$TORCH_VERSION" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"; \
    fi

# An editable install of the library `selah` (model core, backends, embedded checkpoint under
# selah/checkpoints/), and the service run from the source tree: gunicorn imports `app` from the
# working directory, which also holds migrations/. The training stages (training/) are not needed
# to serve and stay out of the image. Flask's instance folder is /srv/selah/instance.
COPY pyproject.toml README.md ./
COPY app ./app
COPY selah ./selah
COPY migrations ./migrations
COPY wsgi.py gunicorn.conf.py boot.sh ./
RUN pip install -e . \
    && mkdir -p instance \
    && chown selah:selah instance

USER selah
EXPOSE 5000
VOLUME ["/srv/selah/instance"]
CMD ["./boot.sh"]
