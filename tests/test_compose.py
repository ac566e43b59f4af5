"""compose/docker-compose.yml and its Dockerfile agree with the code.

There is no Docker engine on the CI machine, so the stack is not started here; these tests
catch what would break it silently: a command our CLI no longer accepts, a URL pointing at
a service name, port, user or database the stack does not have, a missing healthcheck, an
image without the extras its commands need.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("kafka")  # (kafka-python's own import warnings are silenced this way)

from mlmd_log.cli import build_parser  # noqa: E402
from mlmd_log.producer.kafka_log import parse_kafka_url  # noqa: E402
from mlmd_log.projections.mysql import MySqlTarget  # noqa: E402

COMPOSE_DIR = Path(__file__).resolve().parent.parent / "compose"


def _services() -> dict:
    return yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())["services"]


def test_the_four_services_each_have_a_healthcheck():
    services = _services()
    assert set(services) == {"kafka", "mysql", "projector", "server"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name


def test_projector_and_server_commands_parse_and_point_at_the_stack():
    services = _services()
    mysql_env = services["mysql"]["environment"]
    kafka_env = services["kafka"]["environment"]
    parser = build_parser()
    for name, subcommand in (("projector", "project"), ("server", "serve")):
        args = parser.parse_args(services[name]["command"])
        assert args.command == subcommand
        bootstrap, topic = parse_kafka_url(args.log)
        assert f"INTERNAL://{bootstrap}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"], name
        assert topic == "mlmd"
        target = MySqlTarget.from_url(args.into)
        assert (target.host, target.port, target.user, target.password, target.database) == (
            "mysql", 3306, mysql_env["MYSQL_USER"], mysql_env["MYSQL_PASSWORD"], mysql_env["MYSQL_DATABASE"]), name
        dependencies = services[name]["depends_on"]
        assert {dependencies[s]["condition"] for s in ("kafka", "mysql")} == {"service_healthy"}, name
    assert parser.parse_args(services["projector"]["command"]).staging  # the mirrored (bulk) projector
    port = parser.parse_args(services["server"]["command"]).port
    assert f"127.0.0.1:{port}:{port}" in services["server"]["ports"]


def test_the_image_holds_what_the_commands_need():
    services = _services()
    build = services["projector"]["build"]
    dockerfile = (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile == (COMPOSE_DIR / "Dockerfile").resolve()
    text = dockerfile.read_text()
    assert '".[kafka,mysql]"' in text and 'ENTRYPOINT ["mlmd-log"]' in text
    assert services["server"]["image"] == services["projector"]["image"]
