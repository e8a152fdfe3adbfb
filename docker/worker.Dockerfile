# The worker (and the one-shot indexer): TensorFlow, Keras and the model weights, nothing from Telegram.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
COPY pyproject.toml README.md ./
COPY recommender recommender
COPY worker worker
COPY wanderlens wanderlens
COPY bot bot
COPY playground playground
# EXTRA=gpu installs TensorFlow with CUDA instead (docker-compose.gpu.yml sets it).
ARG EXTRA=worker
RUN pip install ".[${EXTRA}]" && useradd --create-home wanderlens && mkdir -p /data && chown wanderlens /data
USER wanderlens
ENV WANDERLENS_INDEX_DIR=/data/index WANDERLENS_CATALOG_DIR=/catalog
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["wanderlens", "worker", "--health"]
CMD ["wanderlens", "worker"]
