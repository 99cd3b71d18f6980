# Triton with the model repository: docker build -f deploy/docker/triton.Dockerfile .
# The python-backend models import the project (inference/, media/), so it is installed here too.
FROM nvcr.io/nvidia/tritonserver:25.10-py3
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
RUN pip install --no-cache-dir . && rm -rf /src
COPY triton_models /models
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", \
     "--load-model=text_encoder_bf16", "--load-model=matcher"]
