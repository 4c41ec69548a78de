# The image the hp-components pipeline steps (suggest, collect, report) run in on KFP and Argo.
#   docker build -t ghcr.io/hp-components/hp-components:0.1.0 .
#   docker build --build-arg EXTRAS=kfp,argo,postgres -t my-registry/hp-components:dev .   # then --image my-registry/...
# Your own search algorithm: FROM this image, RUN pip install your package, then compile with --image.
# Training images need nothing from here: trials get the metrics wrapper's source as an argument.
FROM python:3.11-slim

# kfp: the KFP step components (kfp.dsl.executor_main); gp: PyTorch for bayesianoptimization
ARG EXTRAS=kfp,gp
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY hp_components ./hp_components
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[${EXTRAS}]" \
    && cd / && rm -rf /src \
    && hp-tune --help > /dev/null

WORKDIR /workspace
RUN useradd --create-home --uid 1000 hp
USER 1000
