"""Secrets at rest: GHL tokens and webhook secrets are stored only as Fernet tokens.

`cryptography`'s MultiFernet (AES-128-CBC plus HMAC-SHA256, authenticated) under the keys
in `TRAINU_SECRET_KEYS` (comma-separated, newest first). On embedded defaults the keys live
in a file in the state directory, made (mode 0600) on first use, so `make up` needs
nothing set. Sealing uses the newest key; opening tries each, so during a key rotation both
are valid and nothing stops: `trainu secrets rotate` re-seals every stored secret with the
newest key, after which the older keys can go. A process reading the key file notices when
the file changes and reloads it.

A secret's plain text never leaves through an error: a sealed value that no key opens
raises `SecretUnreadable` naming the row it came from, never the value.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from trainu_dagster.settings import Settings

KEY_FILE_NAME = "secret_keys"


class SecretUnreadable(Exception):
    """No configured key opens a stored secret (a key removed too early, or a wrong one)."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: no configured key opens this secret (was its key removed from "
            "TRAINU_SECRET_KEYS before `trainu secrets rotate` ran?)"
        )


class SecretBox:
    """Seals and opens secrets with the current keys (newest first)."""

    def __init__(self, keys: Sequence[str] = (), *, key_file: Path | None = None) -> None:
        if not keys and key_file is None:
            raise ValueError("a SecretBox needs keys or a key file")
        self._keys = list(keys)
        self._key_file = key_file
        self._loaded: tuple[tuple[int, int], MultiFernet] | None = None
        self._lock = threading.Lock()

    @property
    def key_file(self) -> Path | None:
        """The key file this box reads (embedded defaults), or None with keys from settings."""
        return self._key_file

    def seal(self, plain: str) -> str:
        return self._fernet().encrypt(plain.encode()).decode("ascii")

    def open(self, sealed: str, *, what: str) -> str:
        """The plain text; `what` names the row in the error when no key opens it."""
        try:
            return self._fernet().decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise SecretUnreadable(what) from None

    def reseal(self, sealed: str, *, what: str) -> str:
        """The same secret sealed with the newest key (unchanged if it already is)."""
        try:
            return self._fernet().rotate(sealed.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise SecretUnreadable(what) from None

    def _fernet(self) -> MultiFernet:
        if self._key_file is None:
            if self._loaded is None:
                self._loaded = ((0, 0), MultiFernet([Fernet(k.encode()) for k in self._keys]))
            return self._loaded[1]
        with self._lock:
            stat = self._key_file.stat()  # the file is replaced whole: a new inode
            changed = (stat.st_ino, stat.st_mtime_ns)
            if self._loaded is None or self._loaded[0] != changed:
                keys = read_key_file(self._key_file)
                self._loaded = (changed, MultiFernet([Fernet(k.encode()) for k in keys]))
            return self._loaded[1]


def secret_box(settings: Settings) -> SecretBox:
    """The keys from `TRAINU_SECRET_KEYS`, else the state directory's key file (made now if
    missing)."""
    if settings.secret_keys is not None:
        keys = [k.strip() for k in settings.secret_keys.get_secret_value().split(",")]
        keys = [k for k in keys if k]
        if not keys:
            raise ValueError("TRAINU_SECRET_KEYS is set but holds no key")
        for index, key in enumerate(keys):
            try:
                Fernet(key.encode())
            except ValueError:
                raise ValueError(
                    f"TRAINU_SECRET_KEYS: key {index + 1} is not a Fernet key (32 url-safe "
                    "base64-encoded bytes; make one with `trainu secrets new-key`)"
                ) from None
        return SecretBox(keys)
    path = settings.state_dir / KEY_FILE_NAME
    if not path.exists():
        write_key_file(path, [new_key()], replace=False)
    return SecretBox(key_file=path)


def read_key_file(path: Path) -> list[str]:
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not keys:
        raise ValueError(f"{path} holds no key")
    return keys


def write_key_file(path: Path, keys: Sequence[str], *, replace: bool = True) -> None:
    """Write the key file atomically, readable by its owner only. Without `replace`, a file
    another process made first wins (two first starts at once agree on one key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{k}\n" for k in keys))
        out.flush()
        os.fsync(out.fileno())
    if replace:
        os.replace(partial, path)
        return
    try:
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink()


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")
