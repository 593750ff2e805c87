# The application image of compose.yaml: any base image works, because the
# schemagate binary is static. Copy it in next to your program and your
# migrations, and make "schemagate up -- <program>" the entrypoint.
ARG SCHEMAGATE_IMAGE=schemagate:local
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
FROM ${SCHEMAGATE_IMAGE} AS schemagate

FROM ${PYTHON_IMAGE}
COPY --from=schemagate /schemagate /usr/local/bin/schemagate
COPY migrations /migrations
RUN mkdir -p /srv && echo 'migrated and running' >/srv/index.html
USER 65532:65532
ENTRYPOINT ["schemagate", "up", "--"]
CMD ["python3", "-m", "http.server", "8080", "--directory", "/srv"]
