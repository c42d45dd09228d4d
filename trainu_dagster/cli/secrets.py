"""`trainu secrets`: the keys that seal the stored GHL and webhook secrets."""

from __future__ import annotations

import typer

from trainu_dagster.cli.common import command_group, fail, get_settings, running_database

app = command_group("Keys sealing the stored secrets: rotate them.")


@app.command("new-key")
def secrets_new_key() -> None:
    """Print a fresh key, to put first in TRAINU_SECRET_KEYS before `trainu secrets rotate`."""
    from trainu_dagster.connections.secret_box import new_key

    typer.echo(new_key())


@app.command("rotate")
def secrets_rotate() -> None:
    """Seal every stored secret with the newest key, with no downtime (every process opens
    with each key meanwhile). With TRAINU_SECRET_KEYS: put a new key first, restart, run
    this, then drop the old keys. With the state directory's key file: this adds the new key
    itself and drops the old one once every secret is resealed."""
    from trainu_dagster.connections import secret_box, store

    settings = get_settings()
    database = running_database(settings)
    box = secret_box.secret_box(settings)
    path = box.key_file
    if path is not None:
        old = secret_box.read_key_file(path)
        secret_box.write_key_file(path, [secret_box.new_key(), *old])
    result = store.reseal_all(lambda: database.connect(autocommit=True), box)
    typer.echo(f"{result.resealed} secret(s) sealed with the newest key")
    if result.unreadable:
        raise fail(
            "no configured key opens these, so the older keys stay:\n  "
            + "\n  ".join(result.unreadable)
        )
    if path is not None:
        secret_box.write_key_file(path, secret_box.read_key_file(path)[:1])
        typer.echo(f"the old key is gone from {path}")
    else:
        typer.echo("the older keys can now be removed from TRAINU_SECRET_KEYS")
