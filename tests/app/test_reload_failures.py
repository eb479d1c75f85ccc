"""Every way routes.yaml can be wrong, through the file watcher of a running gateway: the
failure is reported (/readyz, /admin/config) and counted, and the watcher lives on to apply
the next good edit (issue 12: a non-UTF-8 file used to end the watch task silently)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.support import demo_routes, eventually

pytestmark = pytest.mark.anyio
ADMIN_TOKEN = "admin-token-for-reload-failures"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
V1_BODY = {"instances": [[1, 2, 3, 4]]}
NOBODY = 65534


def _bomb() -> str:
    """The "billion laughs": nine levels of nine aliases, 9^9 nodes once expanded."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        name, below = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{below}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _garbage(path: Path, good: str) -> None:
    path.write_bytes(b"backends:\n  \xff\xfe\x00\x80 garbage \xc3\x28\n")


def _empty(path: Path, good: str) -> None:
    path.write_bytes(b"")


def _directory(path: Path, good: str) -> None:
    path.unlink()
    path.mkdir()


def _huge(path: Path, good: str) -> None:
    # A valid table behind a 50 MB comment: only the size cap refuses it (before the cap,
    # PyYAML scanned it for minutes, twice, and then accepted it).
    with path.open("w", encoding="utf-8") as file:
        file.write(good)
        file.write("#" + "x" * (50 * 1024 * 1024) + "\n")


def _bomb_file(path: Path, good: str) -> None:
    path.write_text(_bomb(), encoding="utf-8")


def _unreadable(path: Path, good: str) -> None:
    path.write_text(good.replace("linear", "never"), encoding="utf-8")
    path.chmod(0)


BAD_FILES: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "garbage bytes": (_garbage, r"line 2: <root>: not UTF-8 text: byte 0xff at offset 12"),
    "empty file": (_empty, r"the file is empty"),
    "directory": (_directory, r"is a directory"),
    "50 MB file": (_huge, r"the file is \d+ bytes, over the limit of 16777216"),
    "YAML bomb": (_bomb_file, r"YAML aliases expand the document by more than"),
    "permission denied": (_unreadable, r"cannot read: Permission denied"),
}


@pytest.fixture
def readable_folder() -> Iterator[Path]:
    """A folder any user can read (tmp_path is root's alone: mode 700)."""
    folder = Path(tempfile.mkdtemp(prefix="gateway-reload-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _read_as_nobody() -> None:
    # The tests run as root, and chmod 000 does not stop root. The file system uid is per
    # thread on Linux, and moving it off 0 drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
    # for that thread (setfsuid(2)): the gateway's own reader threads (asyncio.to_thread)
    # then meet the kernel's real EACCES, as a gateway run by an ordinary user would.
    ctypes.CDLL(None, use_errno=True).setfsuid(NOBODY)


async def serves(gateway: RunningGateway, model: str) -> bool:
    response = await gateway.client.post(f"/v1/models/{model}:predict", json=V1_BODY)
    return response.status_code == 200


async def failures(gateway: RunningGateway) -> float:
    metrics = (await gateway.client.get("/metrics")).text
    found = re.search(r'gateway_config_reloads_total\{result="failure"\} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_every_bad_file_is_reported_counted_and_the_watcher_lives_on(
    start_gateway: StartGateway,
    demo_backend: str,
    readable_folder: Path,
    readers_as_nobody: Callable[[], None],
    case: str,
) -> None:
    make_bad, message = BAD_FILES[case]
    if case == "permission denied":
        readers_as_nobody()
    routes = readable_folder / "routes.yaml"
    good = demo_routes(demo_backend)
    routes.write_text(good, encoding="utf-8")
    routes.chmod(0o644)
    gateway = await start_gateway(good, config=routes, watch=True, admin_token=ADMIN_TOKEN)
    await asyncio.sleep(0.3)  # let the watcher start

    make_bad(routes, good)

    async def rejected() -> bool:
        ready = (await gateway.client.get("/readyz")).json()
        return ready["last_reload_ok"] is False and await failures(gateway) >= 1

    await eventually(rejected, 30)
    shown = (await gateway.client.get("/admin/config", headers=ADMIN)).json()["status"]
    assert shown["last_ok"] is False
    assert shown["last_trigger"] == "file"
    assert any(re.search(message, error) for error in shown["last_errors"]), shown
    assert await serves(gateway, "linear")  # still on the last good table

    if routes.is_dir():
        routes.rmdir()
    else:
        routes.unlink()
    replacement = readable_folder / "routes.new"
    replacement.write_text(demo_routes(demo_backend, "edited"), encoding="utf-8")
    replacement.chmod(0o644)
    os.replace(replacement, routes)
    await eventually(lambda: serves(gateway, "edited"), 30)  # the watcher is alive
    assert (await gateway.client.get("/readyz")).json()["last_reload_ok"] is True
    assert await failures(gateway) >= 1


@pytest.fixture
async def readers_as_nobody() -> AsyncIterator[Callable[[], None]]:
    """Call it to make the loop's default executor (asyncio.to_thread) read as ``nobody``;
    root's ordinary executor is given back at teardown."""
    swapped: list[concurrent.futures.ThreadPoolExecutor] = []

    def swap() -> None:
        readers = concurrent.futures.ThreadPoolExecutor(4, initializer=_read_as_nobody)
        asyncio.get_running_loop().set_default_executor(readers)
        swapped.append(readers)

    yield swap
    if swapped:
        asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor())
        swapped[0].shutdown(wait=False)
