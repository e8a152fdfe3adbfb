# The Telegram front end: python-telegram-bot and Redis only. No TensorFlow, so the image stays small.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY recommender recommender
COPY worker worker
COPY wanderlens wanderlens
COPY bot bot
COPY playground playground
RUN pip install ".[bot]" && useradd --create-home wanderlens
USER wanderlens
ENV WANDERLENS_CATALOG_DIR=/catalog
CMD ["wanderlens", "bot"]
