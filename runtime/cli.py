"""`elx`: the command line. Heavy modules are imported inside commands."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Elexirion: multi-step LLM pipelines in YAML under OTP-style supervision."""
