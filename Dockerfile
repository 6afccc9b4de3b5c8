# The Memora image used by docker-compose.yml for the api and worker services.
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 memora
WORKDIR /srv/memora

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY memora_migrations ./memora_migrations
COPY migrations ./migrations
COPY sql ./sql
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER memora
ENV MEMORA_HOST=0.0.0.0 \
    MEMORA_DATA_DIR=/home/memora/.memora
EXPOSE 8000
CMD ["memora", "serve"]
