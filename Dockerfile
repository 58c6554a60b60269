# Selah: the lyric analysis service, served by gunicorn on $PORT (5000).
#   docker build -t selah .
#   docker run -p 5000:5000 -v selah-data:/srv/selah/instance selah
# The embedded SQLite database lives in /srv/selah/instance; set DATABASE_URL for PostgreSQL.
#
# The base is any Debian-like image with Python 3.11 and its venv module: python:3.11-slim from
# a registry, or one made without a registry (scripts/build_base_image.sh: debootstrap of Debian
# bookworm, whose python3 is 3.11, imported as selah-base:bookworm):
#   docker build --build-arg BASE_IMAGE=selah-base:bookworm -t selah .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# PyTorch for the gptoss backend's model, installed before the package so that pip keeps it: the
# CPU-only wheel from PyTorch's own index, because the PyPI wheel pulls in gigabytes of CUDA.
#   docker build --build-arg TORCH_VERSION=2.x.y -t selah .
# Or from a page of wheels (pip --find-links) holding torch-<version>+cpu, where PyTorch's index
# cannot be reached (its other dependencies still come from the package index):
#   docker build --network host --build-arg TORCH_FIND_LINKS=http://127.0.0.1:8765/ -t selah .
ARG TORCH_VERSION="2.13.0"
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_FIND_LINKS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=5000 \
    HOST=0.0.0.0 \
    PATH=/opt/selah/bin:$PATH

# A virtual environment of its own: Debian's system Python refuses pip installs (PEP 668).
RUN python3 -m venv /opt/selah \
    && useradd --create-home --uid 1000 selah
WORKDIR /srv/selah

RUN if [ -n "$TORCH_FIND_LINKS" ]; then \
        pip install --find-links "$TORCH_FIND_LINKS" "torch==$TORCH_VERSION+cpu"; \
    elif [ -n "$TORCH_VERSION" ]; then \
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
