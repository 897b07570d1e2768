# One image for every service of docker-compose.yml: worker, beat, crawler, api and the CLI.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MONITOR_HOME=/data
WORKDIR /app
# scrapy.cfg makes `scrapy crawl NAME` work from /app; config/monitor.toml is read from the
# working directory (MONITOR_CONFIG overrides it); the packages (with the migrations, the
# dashboard's templates and static files, the demo data) are installed from the source.
COPY pyproject.toml README.md scrapy.cfg ./
COPY monitor ./monitor
COPY crawlers ./crawlers
COPY workers ./workers
COPY config ./config
RUN pip install ".[postgres]" \
    && useradd --create-home --uid 1000 monitor \
    && mkdir -p /data && chown monitor:monitor /data
USER monitor
VOLUME ["/data"]
ENTRYPOINT ["monitor"]
