# eventscale: one image for both containers of the pod (adapter and controller).
#
#   docker build -t eventscale:0.1.0 .                               # on python:3.11-slim
#   podman build --build-arg BASE=localhost/my-python:3.11 -t eventscale:0.1.0 .
#
# BASE is any image with python3 (>= 3.11, with the venv module). The final stage holds the
# base's Python, a virtual environment with the dependencies, eventscale itself, and no shell:
# nothing runs one, so it is removed. It runs as uid 65532 and writes nowhere but --cert-dir
# (with --self-signed-certs; the manifests mount an emptyDir there and keep the root read-only).
ARG BASE=python:3.11-slim

# the dependencies, from pyproject.toml alone: rebuilt only when they change. pip first: the
# base's own (Debian's 23.0) backtracks for over 20 minutes on these requirements; a current
# pip resolves them in under a minute
FROM ${BASE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
COPY pyproject.toml /src/
RUN python3 -m venv /opt/eventscale \
 && /opt/eventscale/bin/python -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb')); \
print('\n'.join(p['build-system']['requires'] + p['project']['dependencies']))" > /src/requirements.txt \
 && /opt/eventscale/bin/pip install --quiet --upgrade pip \
 && /opt/eventscale/bin/pip install --quiet -r /src/requirements.txt \
 && /opt/eventscale/bin/python -c "import sysconfig; \
open(sysconfig.get_path('purelib') + '/eventscale-app.pth', 'w').write('/opt/eventscale/app\n')"

# eventscale itself, in its own directory (on sys.path through the .pth file above), so that a
# change of code makes a small layer and the dependencies' layer is reused
FROM deps AS app
COPY adapter /src/adapter
COPY scalers /src/scalers
RUN /opt/eventscale/bin/pip install --quiet --no-deps --no-build-isolation --target /opt/eventscale/app /src

FROM ${BASE}
COPY --from=deps /opt/eventscale /opt/eventscale
COPY --from=app /opt/eventscale/app /opt/eventscale/app
ENV PATH=/opt/eventscale/bin:/opt/eventscale/app/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# exec form: no shell is needed to remove the shells
RUN ["/opt/eventscale/bin/python", "-c", "import os\nfor d in ('/bin', '/usr/bin'):\n  for s in ('sh', 'bash', 'rbash', 'dash'):\n    p = os.path.join(d, s)\n    if os.path.lexists(p): os.remove(p)"]
# the manifests' securityContext runs as this uid (runAsNonRoot, readOnlyRootFilesystem)
USER 65532:65532
ENTRYPOINT ["/opt/eventscale/bin/python", "-m", "adapter"]
CMD ["--help"]
