"""Programs the bench runs from a venv of their own under ``bench/.peers/`` (LiteLLM, granian):
never project dependencies, made and filled with pip the first time one is asked for.

A venv is ready when its command exists and its stamp file lists exactly the requirements asked
for; otherwise pip installs them (again: a requirement already met costs pip a few seconds) and
the stamp is written. A failure is returned as the reason, a string, for the caller to skip
what needed it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PEERS = Path(__file__).resolve().parent / ".peers"
_STAMP = ".bench-requirements"


@dataclass(frozen=True)
class ToolVenv:
    """``bench/.peers/<name>`` holding ``requirements`` (pip requirement strings)."""

    name: str  # e.g. "granian-venv"
    requirements: tuple[str, ...]

    @property
    def folder(self) -> Path:
        return PEERS / self.name

    @property
    def log(self) -> Path:
        return PEERS / f"{self.name.removesuffix('-venv')}-install.log"

    def executable(self, command: str, timeout: float = 900.0) -> Path | str:
        """``bin/<command>`` of the venv, installed there first if needed; or why it cannot
        be (a string)."""
        exe = self.folder / "bin" / command
        stamp = self.folder / _STAMP
        wanted = "\n".join(self.requirements) + "\n"
        if exe.is_file() and stamp.is_file() and stamp.read_text() == wanted:
            return exe
        what = " ".join(self.requirements)
        print(
            f"bench: installing {what} into {self.folder} (once; a few minutes)",
            file=sys.stderr,
            flush=True,
        )
        PEERS.mkdir(exist_ok=True)
        steps = [[str(self.folder / "bin" / "pip"), "install", "-q", *self.requirements]]
        if not (self.folder / "bin" / "python").is_file():
            steps.insert(0, [sys.executable, "-m", "venv", str(self.folder)])
        failed = _install(steps, self.log, what, timeout)
        if failed is not None:
            return failed
        if not exe.is_file():
            return f"no {exe} after installing {what}"
        stamp.write_text(wanted)
        return exe

    def version(self, distribution: str) -> str | None:
        """The installed version of ``distribution`` in the venv (for the JSON), or None."""
        python = self.folder / "bin" / "python"
        if not python.is_file():
            return None
        code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
        done = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, check=False,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )  # fmt: skip
        return done.stdout.strip() or None


def runtime_gateway(root: Path, timeout: float = 900.0) -> Path | str:
    """``gateway`` installed as the Dockerfile installs it: ``requirements/runtime.txt`` (the
    hashed pins, without the dev extra) and then this tree, not editable, into
    ``bench/.peers/runtime-venv``; or why it cannot be (a string). The pins are installed
    when the lock changed; the tree every time (a few seconds), so it is the one measured."""
    folder = PEERS / "runtime-venv"
    log = PEERS / "runtime-install.log"
    lock = root / "requirements" / "runtime.txt"
    stamp = folder / _STAMP
    pip = str(folder / "bin" / "pip")
    steps: list[list[str]] = []
    if not (folder / "bin" / "python").is_file():
        steps.append([sys.executable, "-m", "venv", str(folder)])
    pins = not stamp.is_file() or stamp.read_text() != lock.read_text()
    if pins:
        steps.append([pip, "install", "-q", "--require-hashes", "-r", str(lock)])
    install = [pip, "install", "-q", "--no-deps", "--no-build-isolation", "--force-reinstall"]
    steps.append([*install, str(root)])
    PEERS.mkdir(exist_ok=True)
    print(f"bench: installing the gateway's runtime into {folder}", file=sys.stderr, flush=True)
    failed = _install(steps, log, "the runtime", timeout, cwd=root)
    if failed is not None:
        return failed
    if pins:
        stamp.write_text(lock.read_text())
    exe = folder / "bin" / "gateway"
    return exe if exe.is_file() else f"no {exe} after installing the runtime (see {log})"


def _install(
    steps: list[list[str]], log: Path, what: str, timeout: float, cwd: Path | None = None
) -> str | None:
    """Run ``steps`` in order, their output into ``log``; why one failed (a string), or None."""
    with log.open("w") as out:
        for cmd in steps:
            try:
                done = subprocess.run(
                    cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False,
                    cwd=cwd,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"cannot install {what}: {exc!r} (see {log})"
            if done.returncode != 0:
                why = f"{Path(cmd[0]).name} exit {done.returncode}"
                return f"cannot install {what}: {why} (see {log})"
    return None
