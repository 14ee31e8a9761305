"""The ``wayport`` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from wayport.settings import Settings, SettingsError

cli = typer.Typer(
    help="Wayport: an open, self-hosted AI gateway, wire-compatible with Portkey.", no_args_is_help=True
)


@cli.callback()
def _root() -> None:
    """Wayport: an open, self-hosted AI gateway, wire-compatible with Portkey."""


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8787]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: 1]")] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config-file", help="TOML settings file (see docs/configuration.md)")
    ] = None,
) -> None:
    """Start the gateway."""
    # Flags go into the environment so that every worker process loads the same settings.
    if config_file is not None:
        os.environ["WAYPORT_CONFIG_FILE"] = str(config_file)
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"WAYPORT_{name}"] = str(value)
    try:
        settings = Settings.load()
    except SettingsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Wayport listening on http://{settings.host}:{settings.port} (data in {settings.data_dir})")
    uvicorn.run(
        "wayport.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        # The access log would print query strings, which may carry keys; and it costs CPU per request.
        access_log=False,
        server_header=False,
    )


def main() -> None:
    cli()
