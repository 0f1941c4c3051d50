"""tools/install_venv.sh: the up-to-date check that makes a second 'make install' do nothing, and its errors.

Run on a copy of the script beside a stand-in venv, so no packages are installed by the tests.
"""
import hashlib
import shutil
import subprocess

import pytest


@pytest.fixture
def fake_root(tmp_path, repo_root):
    (tmp_path / "tools" / "venv" / "bin").mkdir(parents=True)
    shutil.copy(repo_root / "tools" / "install_venv.sh", tmp_path / "tools" / "install_venv.sh")
    shutil.copy(repo_root / "setup.py", tmp_path / "setup.py")
    python = tmp_path / "tools" / "venv" / "bin" / "python"
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    return tmp_path


def install(root, **env):
    return subprocess.run([str(root / "tools" / "install_venv.sh")], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60, check=False)


def stamp_of(root):
    blob = (root / "setup.py").read_bytes() + (root / "tools" / "install_venv.sh").read_bytes()
    return hashlib.sha256(blob).hexdigest()


def test_matching_stamp_does_nothing_but_restores_activate_script(fake_root):
    (fake_root / "tools" / "venv" / ".rellm-install.stamp").write_text(stamp_of(fake_root) + "\n")
    result = install(fake_root, PYTHON="/nonexistent/python3")  # would fail if it tried to install anything
    assert result.returncode == 0, result.stderr
    assert "tools/venv is up to date" in result.stdout
    activate = (fake_root / "tools" / "activate_python.sh").read_text()
    assert 'venv/bin/activate"' in activate


def test_changed_setup_py_means_reinstall(fake_root):
    (fake_root / "tools" / "venv" / ".rellm-install.stamp").write_text(stamp_of(fake_root) + "\n")
    (fake_root / "setup.py").write_text((fake_root / "setup.py").read_text() + "# new dependency\n")
    result = install(fake_root, PYTHON="/nonexistent/python3")
    assert result.returncode == 1 and "/nonexistent/python3 not found" in result.stderr


def test_too_old_python_is_refused(fake_root, tmp_path):
    old = tmp_path / "python3.9"
    old.write_text('#!/bin/sh\ncase "$*" in *platform*) echo 3.9.18 ;; *) exit 1 ;; esac\n')
    old.chmod(0o755)
    result = install(fake_root, PYTHON=str(old))
    assert result.returncode == 1 and "is Python 3.9.18; rellm needs >= 3.10" in result.stderr
