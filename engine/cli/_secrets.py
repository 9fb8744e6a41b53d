"""Where the command line reads secrets: the password from a file, the environment or a prompt,
the other secrets from environment variables; never from the command line itself. Each broker's
CLI part reads its secrets through ``CommandLineSecrets`` (a ``SecretSource``)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from brokergate.machines import Secret


class UsageError(Exception):
    """A mistake on the command line or in the environment; exit 2."""


def read_env_secret(var: str, what: str) -> Secret:
    value = os.environ.get(var)
    if not value:
        raise UsageError(f"no {what}: the environment variable {var} is not set or empty")
    return Secret(value)


def read_password(args: argparse.Namespace) -> Secret:
    """The password from --password-file, the environment, or a prompt on a terminal."""
    if args.password_file is not None:
        try:
            lines = args.password_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            # The path is not repeated: it may be the password itself, typed in the wrong place.
            raise UsageError("--password-file: no such file (the path given is not repeated "
                             "here in case it is a secret)") from None
        except OSError as exc:
            raise UsageError(f"cannot read --password-file {args.password_file}: "
                             f"{exc.strerror}") from None
        if not lines or not lines[0]:
            raise UsageError(f"--password-file {args.password_file} is empty")
        return Secret(lines[0])
    value = os.environ.get(args.password_env)
    if value:
        return Secret(value)
    if sys.stdin.isatty():
        return Secret(getpass.getpass(f"password for {args.user}: "))
    raise UsageError(f"no password: set the environment variable {args.password_env} "
                     "(or use --password-env VAR / --password-file FILE)")


class CommandLineSecrets:
    """The ``SecretSource`` the command line gives the brokers' CLI parts."""

    def password(self, args: argparse.Namespace) -> Secret:
        return read_password(args)

    def from_env(self, variable: str, what: str) -> Secret:
        return read_env_secret(variable, what)
