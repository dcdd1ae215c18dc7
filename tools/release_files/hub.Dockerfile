# The single-user image for a JupyterHub (docs/instructor-guide.md, "Teaching from a JupyterHub").
# Build it beside a student release: `make release && docker build -f tools/release_files/hub.Dockerfile dist`.
# It holds the student release only (utils, data, licences), never the course repository: no solutions, no lessons.
# Not built by CI (no container engine there); `make hub-test` runs the same environment without a container.
FROM python:3.11-slim
ENV GOMP_SPINCOUNT=1000 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
COPY vae-course-student/requirements.txt /tmp/requirements.txt
# The CPU build of the pinned torch first (PyPI's default Linux wheel is the CUDA one, 2+ GB larger), then the rest.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==$(sed -n 's/^torch==//p' /tmp/requirements.txt)" \
 && pip install -r /tmp/requirements.txt jupyterhub==6.1.1 nbgitpuller==1.3.0
COPY vae-course-student /opt/vae-course-student
# utils and data/ importable from any folder; the notebooks reach students through the nbgitpuller link.
RUN rm -rf /opt/vae-course-student/notebooks && pip install --no-deps -e /opt/vae-course-student
RUN useradd --create-home --uid 1000 jovyan
USER jovyan
WORKDIR /home/jovyan
CMD ["jupyterhub-singleuser"]
