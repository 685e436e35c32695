import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from infra.home import home_secret, private_dir, s3_keys
from infra.settings import from_env


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask():
    """The most careless umask an operator can have: files and folders open to everyone."""
    saved = os.umask(0)
    yield
    os.umask(saved)


def test_home_and_secret_are_owner_only_whatever_the_umask(tmp_path, open_umask):
    home = tmp_path / "new" / "home"
    secret = home_secret(home, "pii-salt")
    assert _mode(tmp_path / "new") == 0o700 and _mode(home) == 0o700
    assert _mode(home / "secrets") == 0o700 and _mode(home / "secrets" / "pii-salt") == 0o600
    assert len(secret) >= 40
    assert os.listdir(home / "secrets") == ["pii-salt"]  # no draft left behind


def test_a_secret_is_stable_for_a_home_and_differs_between_homes(tmp_path):
    first = home_secret(tmp_path / "a", "pii-salt")
    assert home_secret(tmp_path / "a", "pii-salt") == first
    assert home_secret(tmp_path / "b", "pii-salt") != first
    assert home_secret(tmp_path / "a", "s3-secret-key") != first


def _secret_in_child(home: str, queue) -> None:
    queue.put(home_secret(Path(home), "pii-salt"))


def test_processes_starting_on_a_new_home_at_once_agree(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [
        context.Process(target=_secret_in_child, args=(str(tmp_path), queue)) for _ in range(4)
    ]
    for child in children:
        child.start()
    values = {queue.get(timeout=60) for _ in children}
    for child in children:
        child.join(timeout=60)
    assert len(values) == 1


def test_an_existing_open_home_is_narrowed(tmp_path, caplog):
    tmp_path.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)  # a home made before hqlake cared
    with caplog.at_level("DEBUG", logger="infra.home"):
        private_dir(home)
    assert _mode(home) == 0o700
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # others could get in
    # a tool's open sub-folder inside the private home is narrowed quietly: nobody else
    # could reach it
    (home / "airflow").mkdir(mode=0o755)
    (home / "airflow").chmod(0o755)
    caplog.clear()
    with caplog.at_level("DEBUG", logger="infra.home"):
        private_dir(home / "airflow")
    assert _mode(home / "airflow") == 0o700
    assert [r.levelname for r in caplog.records] == ["DEBUG"]


def test_a_secret_others_can_read_or_a_link_is_refused(tmp_path):
    home = tmp_path / "home"
    salt = home_secret(home, "pii-salt")
    path = home / "secrets" / "pii-salt"
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        home_secret(home, "pii-salt")
    path.chmod(0o600)
    other = home / "secrets" / "s3-secret-key"
    other.symlink_to(path)  # a link could point at any file, e.g. another home's salt
    with pytest.raises(OSError):
        home_secret(home, "s3-secret-key")
    assert home_secret(home, "pii-salt") == salt


def test_embedded_s3_keys_come_from_the_home_unless_set(tmp_path):
    config = from_env({"HQLAKE_HOME": str(tmp_path)})
    access, secret = s3_keys(config)
    assert access and secret and access != secret
    assert (access, secret) != ("hqlake", "hqlake-local")  # the old public keys
    assert s3_keys(config) == (access, secret)
    assert s3_keys(from_env({"HQLAKE_HOME": str(tmp_path / "other")})) != (access, secret)
    chosen = from_env(
        {"HQLAKE_HOME": str(tmp_path), "HQLAKE_S3_ACCESS_KEY": "k", "HQLAKE_S3_SECRET_KEY": "s"}
    )
    assert s3_keys(chosen) == ("k", "s")


def test_production_s3_keys_come_only_from_the_environment(tmp_path):
    env = {"HQLAKE_HOME": str(tmp_path / "home"), "HQLAKE_S3_ENDPOINT": "minio:9000"}
    assert s3_keys(from_env(env)) == ("", "")
    assert not (tmp_path / "home").exists()
    keys = {"HQLAKE_S3_ACCESS_KEY": "k", "HQLAKE_S3_SECRET_KEY": "s"}
    assert s3_keys(from_env({**env, **keys})) == ("k", "s")


@pytest.mark.integration
def test_runtime_makes_a_new_home_owner_only(tmp_path):
    """The composition root on a fresh home, in its own process (chDB opens one data path per
    process) and with a umask that would leave everything open."""
    home = tmp_path / "new" / "home"
    script = (
        "import os; os.umask(0)\n"
        "from infra.runtime import runtime\n"
        "with runtime() as rt:\n"
        "    rt.ch.query('SELECT 1')\n"
        "    assert rt.s3.bucket_exists(rt.settings.lake_bucket)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQLAKE_")}
    subprocess.run(
        [sys.executable, "-c", script], env={**env, "HQLAKE_HOME": str(home)}, check=True
    )
    for folder in (tmp_path / "new", home, home / "secrets", home / "chdb", home / "seaweedfs"):
        assert _mode(folder) == 0o700, folder
    assert {p.name: _mode(p) for p in (home / "secrets").iterdir()} == {
        "s3-access-key": 0o600,
        "s3-secret-key": 0o600,
    }
