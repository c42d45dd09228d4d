"""`trainu users`: the people who sign in to the app."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from trainu_dagster.cli.common import command_group, fail, get_settings, running_database

app = command_group("People who sign in to the TrainU app.")


@app.command("add")
def users_add(
    email: Annotated[str, typer.Argument()],
    location: Annotated[str, typer.Option(help="GHL location id.")],
    role: Annotated[str, typer.Option(help="owner, trainer or client.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a sign-in (prompts for the password unless --password-stdin)."""
    from trainu_dagster import accounts

    password = (
        sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("Password: ")
    )
    with running_database(get_settings()).connect() as conn:
        try:
            user = accounts.create_user(
                conn,
                location_id=location,
                email=email,
                password=password,
                role=role,  # type: ignore[arg-type]
                display_name=name,
            )
        except accounts.AccountError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"created {user.role} {user.email} ({user.id})")


@app.command("list")
def users_list(
    location: Annotated[str | None, typer.Option(help="Only this location.")] = None,
) -> None:
    """List sign-ins."""
    with running_database(get_settings()).connect() as conn:
        rows = conn.execute(
            """
            SELECT location_id, role, email, display_name, disabled_at IS NOT NULL
            FROM app.users WHERE %(location)s::text IS NULL OR location_id = %(location)s
            ORDER BY location_id, role, email
            """,
            {"location": location},
        ).fetchall()
    for location_id, role, email, display_name, disabled in rows:
        fields = [location_id, role, email, display_name] + (["(disabled)"] if disabled else [])
        typer.echo("\t".join(fields))
