FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY crawlers ./crawlers
COPY workers ./workers
COPY config ./config
RUN pip install --no-cache-dir ".[postgres]"
ENTRYPOINT ["monitor"]
