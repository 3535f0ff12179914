"""deploy/: the systemd units load, run commands that exist, and use settings README documents; the nginx example
passes ``nginx -t``.
"""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import get_commands

from space.celery import app

BASE_DIR = Path(__file__).resolve().parents[1]
DEPLOY = BASE_DIR / "deploy"
UNITS = DEPLOY / "systemd"
INSTALLED_AT = "/opt/space"  # where the units expect the checkout and its .venv


def unit_files() -> list[Path]:
    return sorted(path for path in UNITS.rglob("*") if path.is_file())


def exec_starts() -> list[list[str]]:
    commands = []
    for path in unit_files():
        for line in path.read_text().splitlines():
            if line.startswith("ExecStart="):
                commands.append(shlex.split(line.removeprefix("ExecStart=")))
    return commands


def test_every_unit_loads_cleanly_in_systemd(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The units as installed, but pointing at this checkout, so that systemd finds the programs they run.
    shutil.copytree(UNITS, tmp_path / "units")
    for path in (tmp_path / "units").rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace(INSTALLED_AT, str(BASE_DIR)))
    names = [path.name for path in (tmp_path / "units").glob("*") if path.is_file() and "@." not in path.name]
    names += ["space-web@8101.service"]
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names],
        cwd=tmp_path / "units",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Unknown or misspelt keys are only warned about: there must be none.
    assert result.stderr == "", result.stderr


def test_the_units_run_manage_py_commands_and_celery_queues_that_exist():
    commands = exec_starts()
    manage = [command for command in commands if "manage.py" in command]
    celery = [command for command in commands if command[0].endswith("/celery")]
    broker = [command for command in commands if command[0] == "/usr/sbin/mosquitto"]
    assert len(manage) + len(celery) + len(broker) == len(commands)
    for command in manage:
        assert command[0] == f"{INSTALLED_AT}/.venv/bin/python"
        assert command[command.index("manage.py") + 1] in get_commands()
    queues = {route["queue"] for route in app.conf.task_routes.values()} | {app.conf.task_default_queue}
    for command in celery:
        assert command[:3] == [f"{INSTALLED_AT}/.venv/bin/celery", "-A", "space"]
        if command[3] == "worker":
            assert command[command.index("-Q") + 1] in queues
    assert {command[3] for command in celery} == {"worker", "beat"}
    assert sorted(command[command.index("-Q") + 1] for command in celery if command[3] == "worker") == sorted(queues)


def test_the_face_broker_unit_runs_the_configuration_face_broker_writes(settings, tmp_path):
    """Debian's Mosquitto (scripts/install.sh) with the mosquitto.conf of the production VAR_DIR's device CA."""
    from devices.face.pki import device_ca_folder

    unit = (UNITS / "space-face-broker.service").read_text()
    env = dict(re.findall(r"^#?([A-Z_]+)=(.*)$", (DEPLOY / "space.env.example").read_text(), re.MULTILINE))
    settings.VAR_DIR, settings.SPACE_FACE_CA_DIR = env["SPACE_VAR_DIR"], ""
    config = device_ca_folder() / "mosquitto.conf"
    assert [["/usr/sbin/mosquitto", "-c", str(config)]] == [c for c in exec_starts() if "mosquitto" in c[0]]
    assert f"ConditionPathExists={config}" in unit
    assert "LimitNOFILE=65536" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert re.search(r"^\s+.* mosquitto mosquitto-clients\)$", (BASE_DIR / "scripts" / "install.sh").read_text(), re.M)


def test_every_web_server_runs_without_migrating_after_the_migrations_unit():
    web = (UNITS / "space-web@.service").read_text()
    assert "runspace --no-migrate --port %i" in web
    assert "Requires=space-migrate.service" in web and "After=space-migrate.service" in web
    assert "Restart=always" in web


def settings_in_env_example() -> set[str]:
    names = set()
    for line in (DEPLOY / "space.env.example").read_text().splitlines():
        found = re.match(r"#?([A-Z][A-Z0-9_]+)=", line)
        if found:
            names.add(found[1])
    return names


def test_every_setting_of_the_environment_example_is_documented_in_the_readme():
    readme = (BASE_DIR / "README.md").read_text()
    names = settings_in_env_example()
    assert {"SPACE_PROFILE", "SPACE_BEHIND_TLS_PROXY", "SPACE_TLS_CERT_FILE"} <= names
    undocumented = {
        name for name in names if f"`{name}`" not in readme and f"`{name.removesuffix('_FILE')}`" not in readme
    }
    assert not undocumented


def test_secrets_come_from_files_not_from_the_environment_example():
    names = settings_in_env_example()
    for secret in ("SPACE_SECRET_KEY", "SPACE_MASTER_KEY", "DATABASE_URL"):
        assert secret not in names
        assert f"{secret}_FILE" in names


def nginx_binary() -> str | None:
    return os.environ.get("SPACE_TEST_NGINX") or shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def test_the_nginx_example_passes_nginx_t(tmp_path):
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (SPACE_TEST_NGINX may name a binary)")
    from core.certificates import make_site_certificate

    paths = make_site_certificate(["space.example.com"], tmp_path / "tls").paths
    site = (DEPLOY / "nginx" / "space.conf").read_text()
    site = site.replace("/etc/space/tls/server.crt", str(paths.server_cert))
    site = site.replace("/etc/space/tls/server.key", str(paths.server_key))
    (tmp_path / "space.conf").write_text(site)
    temporary = "\n".join(
        f"    {kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temporary}\n    include {tmp_path / 'space.conf'};\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
