"""Settings come from the environment; the production profile refuses unsafe ones.

Each test runs ``manage.py`` in a subprocess: settings are read once per
process, so a changed environment needs a new one.
"""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
SAFE_SECRET = "x" * 20 + "-long-enough-secret-key-for-tests"


def manage(*args, tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"))
    }
    environment["SPACE_VAR_DIR"] = str(tmp_path / "var")
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def check(tmp_path, **env) -> subprocess.CompletedProcess:
    return manage("check", tmp_path=tmp_path, **env)


def print_setting(name, tmp_path, **env) -> str:
    result = manage(
        "shell", "-c", f"from django.conf import settings; print(settings.{name})", tmp_path=tmp_path, **env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]  # after the shell's own notices


def production(**overrides) -> dict:
    env = {
        "SPACE_PROFILE": "production",
        "SPACE_SECRET_KEY": SAFE_SECRET,
        "SPACE_MASTER_KEY": SAFE_SECRET,
        "SPACE_ALLOWED_HOSTS": "space.example.com",
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def test_the_production_profile_starts_with_a_safe_configuration(tmp_path):
    result = check(tmp_path, **production())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SPACE_DEBUG": "true"}, "SPACE_DEBUG is on"),
        ({"SPACE_SECRET_KEY": None}, "SPACE_SECRET_KEY is not set"),
        ({"SPACE_SECRET_KEY": "too-short"}, "SPACE_SECRET_KEY is shorter than 32 characters"),
        ({"SPACE_MASTER_KEY": None}, "SPACE_MASTER_KEY is not set"),
        ({"SPACE_MASTER_KEY": "short"}, "SPACE_MASTER_KEY is shorter than 32 characters"),
        ({"SPACE_ALLOWED_HOSTS": None}, "SPACE_ALLOWED_HOSTS is empty"),
        ({"SPACE_ALLOWED_HOSTS": "space.example.com,*"}, "SPACE_ALLOWED_HOSTS contains '*'"),
    ],
    ids=["debug", "no-secret", "short-secret", "no-master-key", "short-master-key", "no-hosts", "any-host"],
)
def test_the_production_profile_refuses_an_unsafe_setting(tmp_path, overrides, message):
    result = check(tmp_path, **production(**overrides))
    assert result.returncode != 0
    assert "Refusing to start the production profile" in result.stderr
    assert message in result.stderr


def test_the_production_profile_lists_every_problem_at_once(tmp_path):
    result = check(tmp_path, SPACE_PROFILE="production", SPACE_DEBUG="1")
    assert result.returncode != 0
    for message in ("SPACE_DEBUG is on", "SPACE_SECRET_KEY is not set", "SPACE_ALLOWED_HOSTS is empty"):
        assert message in result.stderr


def test_the_production_profile_does_not_generate_a_secret_key(tmp_path):
    check(tmp_path, **production(SPACE_SECRET_KEY=None, SPACE_MASTER_KEY=None))
    assert not (tmp_path / "var" / "secret_key").exists()
    assert not (tmp_path / "var" / "master_key").exists()


def test_an_unknown_profile_is_refused(tmp_path):
    result = check(tmp_path, SPACE_PROFILE="staging")
    assert result.returncode != 0
    assert "SPACE_PROFILE must be 'embedded' or 'production'" in result.stderr


def test_embedded_generates_a_secret_key_in_var_readable_by_its_owner_only(tmp_path):
    first = print_setting("SECRET_KEY", tmp_path)
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.read_text().strip() == first
    assert len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_the_generated_secret_key_is_stable_across_starts(tmp_path):
    assert print_setting("SECRET_KEY", tmp_path) == print_setting("SECRET_KEY", tmp_path)


def test_a_bad_time_zone_is_refused(tmp_path):
    result = check(tmp_path, SPACE_TIME_ZONE="Mars/Olympus_Mons")
    assert result.returncode != 0
    assert "SPACE_TIME_ZONE: unknown time zone 'Mars/Olympus_Mons'" in result.stderr


def test_a_good_time_zone_is_taken(tmp_path):
    assert print_setting("TIME_ZONE", tmp_path, SPACE_TIME_ZONE="Europe/Madrid") == "Europe/Madrid"


def test_a_secret_can_come_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SAFE_SECRET + "\n")
    env = production(SPACE_SECRET_KEY=None, SPACE_SECRET_KEY_FILE=str(secret_file))
    assert check(tmp_path, **env).returncode == 0
    assert print_setting("SECRET_KEY", tmp_path, **env) == SAFE_SECRET


def test_an_unreadable_file_variant_is_refused(tmp_path):
    result = check(tmp_path, **production(SPACE_SECRET_KEY=None, SPACE_SECRET_KEY_FILE=str(tmp_path / "missing")))
    assert result.returncode != 0
    assert "SPACE_SECRET_KEY_FILE: cannot read" in result.stderr


def test_a_malformed_boolean_is_refused(tmp_path):
    result = check(tmp_path, SPACE_DEBUG="maybe")
    assert result.returncode != 0
    assert "SPACE_DEBUG must be a boolean" in result.stderr


def test_photos_go_under_var_by_default_and_never_inside_the_public_static_folder(tmp_path):
    assert print_setting("SPACE_PHOTO_DIR", tmp_path) == str(tmp_path / "var" / "photos")
    static = tmp_path / "static"

    result = check(tmp_path, SPACE_STATIC_ROOT=str(static), SPACE_PHOTO_DIR=str(static / "photos"))

    assert result.returncode != 0
    assert "SPACE_PHOTO_DIR is inside SPACE_STATIC_ROOT" in result.stderr


def test_a_photo_size_limit_below_a_kilobyte_is_refused(tmp_path):
    result = check(tmp_path, SPACE_PHOTO_MAX_BYTES="100")
    assert result.returncode != 0
    assert "SPACE_PHOTO_MAX_BYTES must be at least 1024" in result.stderr
