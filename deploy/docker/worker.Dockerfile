# The resolver worker (also `resolver reconcile`): docker build -f deploy/docker/worker.Dockerfile .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY content_resolver content_resolver
COPY benchmarks benchmarks
COPY training training
COPY evaluation evaluation
COPY streams streams
COPY inference inference
COPY vector_index vector_index
COPY deploy deploy
COPY resolution resolution
COPY settings settings
COPY telemetry telemetry
COPY media media
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The worker reads the matcher's trained thresholds (matcher.json) next to the model it calls in Triton.
COPY triton_models/matcher /app/triton_models/matcher
ENV RESOLVER_STACK_TRITON_MODEL_REPOSITORY=/app/triton_models \
    RESOLVER_STACK_STATE_DIR=/var/lib/resolver \
    PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --create-home resolver && mkdir -p /var/lib/resolver && chown resolver /var/lib/resolver
USER 10001
WORKDIR /app
ENTRYPOINT ["resolver"]
CMD ["worker"]
