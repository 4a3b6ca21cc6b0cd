"""The files ops run Portrait with: docker-compose.yml (no Docker engine runs here, so its
structure is checked), the Dockerfile, and the `portrait` command's parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from services.cli.main import build_parser
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_five_services_with_health_checks():
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
    for name in ("postgres", "redis", "api", "worker"):
        assert "test" in services[name]["healthcheck"], name
    assert services["migrate"]["restart"] == "no"


def test_compose_starts_api_and_worker_only_after_a_successful_migration():
    services = _compose()["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == "service_healthy"


def test_compose_commands_are_real_portrait_commands():
    parser = build_parser()
    for name in ("migrate", "api", "worker"):
        command = _compose()["services"][name]["command"]
        assert command[0] == "portrait"
        parser.parse_args(command[1:])  # exits (SystemExit) on an unknown command or flag
    worker_check = _compose()["services"]["worker"]["healthcheck"]["test"]
    parser.parse_args(worker_check[2:])


def test_compose_environment_is_understood_by_settings():
    env = _compose()["x-portrait-env"]
    resolved = {k: str(v).replace("${POSTGRES_PASSWORD:-portrait}", "pw") for k, v in env.items()}
    resolved = {
        k: v.split(":-")[-1].rstrip("}") if v.startswith("${") else v for k, v in resolved.items()
    }
    old = dict(os.environ)
    try:
        os.environ.update(resolved)
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert settings.database.url == "postgresql://postgres:pw@postgres:5432/portrait"
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.database.app_password == "portrait-app"
    assert settings.environment == "production"


def test_dockerfile_installs_the_package_and_runs_unprivileged():
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in text
    assert "\nUSER portrait" in text
    for path in ("shared", "services", "migrations", "pyproject.toml"):
        assert path in text


async def test_tenants_create_prints_json_last_and_the_key_reads_jobs(settings, client, tmp_path):
    env = {**os.environ, "DATABASE_URL": settings.database.url, "PORTRAIT_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "tenants", "create", "cli-store"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    created = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(created) == {"tenant_id", "api_key", "webhook_secret"}
    jobs = await client.get("/v1/jobs", headers={"Authorization": f"Bearer {created['api_key']}"})
    assert jobs.status_code == 200
    again = subprocess.run(
        [sys.executable, "-m", "services.cli", "tenants", "create", "cli-store"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert again.returncode != 0
    assert "exists already" in again.stderr
