# eventscale: one image for both containers of the pod (adapter and controller).
#   docker build -t eventscale:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml /src/
COPY adapter /src/adapter
COPY scalers /src/scalers
RUN pip install /src && rm -rf /src

# the manifests' securityContext runs as this uid (runAsNonRoot, readOnlyRootFilesystem)
USER 65532:65532
ENTRYPOINT ["python", "-m", "adapter"]
CMD ["--help"]
