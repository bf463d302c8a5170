# es-inference-sidecar: the Elasticsearch Inference API in front of any Elasticsearch node.
#
#   docker build -t es-inference-sidecar .
#   docker run -p 9201:9201 -e SIDECAR_ES_URL=http://elasticsearch:9200 \
#       -e SIDECAR_SECRETS_KEY_FILE=/run/secrets/sidecar_secrets_key ... es-inference-sidecar
#
# torch comes from the index named by the build argument TORCH_INDEX_URL. The default,
# https://download.pytorch.org/whl/cpu, serves CPU-only wheels: the image stays small (PyPI's
# torch wheel brings several GB of CUDA libraries). For NVIDIA GPUs build a CUDA image from the
# index of a CUDA version your driver supports, and give the container the GPU:
#
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#       -t es-inference-sidecar:cuda .
#   docker run --gpus all -e SIDECAR_DEVICE=cuda ... es-inference-sidecar:cuda
#
# (SIDECAR_DEVICE=auto, the default, also picks the GPU when torch sees one.)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, in its own layer, from TORCH_INDEX_URL (see the header). The version installed
# is then a constraint for the project's install, so that resolving the project's
# dependencies from PyPI can never replace it with PyPI's CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch>=2.2" \
    && pip freeze | grep -i '^torch==' > /etc/pip-torch-constraint.txt

WORKDIR /app
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
RUN pip install --constraint /etc/pip-torch-constraint.txt . && rm -rf /root/.cache

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/sidecar sidecar \
    && mkdir -p /home/sidecar/.cache/huggingface \
    && chown -R sidecar:sidecar /home/sidecar
USER sidecar

ENV SIDECAR_HOST=0.0.0.0 \
    SIDECAR_PORT=9201 \
    HF_HOME=/home/sidecar/.cache/huggingface
EXPOSE 9201
VOLUME ["/home/sidecar/.cache/huggingface"]

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9201/_sidecar/health', timeout=4)"]

ENTRYPOINT ["es-inference-sidecar"]
