# sgan on a CUDA-capable PyTorch base image: `docker run --gpus all -v $PWD:/work sgan prep ffhq ...`
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

# opencv-python needs libGL and glib at import time; the slim base image has neither.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/sgan
COPY pyproject.toml README.md ./
COPY stylegan_cli ./stylegan_cli
COPY pipelines ./pipelines
RUN pip install --no-cache-dir .

WORKDIR /work
ENTRYPOINT ["sgan"]
CMD ["--help"]
