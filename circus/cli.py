"""`circus` command line: parses arguments and calls into the package."""

from __future__ import annotations

import argparse
import asyncio
import sys

from circus.app import config as configuration
from circus.app import logsetup as circus_logging
from circus.db.migrations import MigrationError
from circus.domain.errors import StartupError, TaskFailed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="circus", description="Continuous integration for Nix")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run any subset of the roles in one process")
    run.add_argument("--roles", default="server,evaluator,runner",
                     help="comma-separated: server, evaluator, runner (default: all)")
    demo = sub.add_parser("demo", help="all roles, embedded database, a demo project")
    demo.add_argument("--state-dir", default="./circus-demo")
    demo.add_argument("--port", type=int, default=3000)
    migrate = sub.add_parser("migrate", help="database migrations")
    msub = migrate.add_subparsers(dest="action", required=True)
    msub.add_parser("up", help="apply pending migrations")
    msub.add_parser("status", help="list migrations and whether they are applied")
    msub.add_parser("validate", help="report migrations edited after they were applied")
    create = msub.add_parser("create", help="create a new, empty migration file")
    create.add_argument("name")
    sub.add_parser("doctor", help="check that Nix works for Circus; exit 1 on the first failure")
    cfg = sub.add_parser("config", help="configuration")
    csub = cfg.add_subparsers(dest="action", required=True)
    csub.add_parser("show", help="print the effective configuration as TOML")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "doctor":
            from circus.app import doctor

            return asyncio.run(doctor.main())
        if args.command == "demo":
            from circus.app import demo

            return demo.main(args.state_dir, args.port)
        config = configuration.load()
        circus_logging.setup(config.tracing)
        if args.command == "run":
            from circus.app import supervisor

            roles = supervisor.parse_roles(args.roles)
            asyncio.run(supervisor.run(config, roles))
            return 0
        if args.command == "migrate":
            from circus.app import migrate as admin

            return asyncio.run(admin.migrate(config, args.action, getattr(args, "name", None)))
        if args.command == "config":
            sys.stdout.write(configuration.to_toml(config))
            return 0
    except (StartupError, TaskFailed, MigrationError) as exc:
        sys.stderr.write(f"circus: {exc}\n")
        return 1
    except configuration.ConfigError as exc:
        sys.stderr.write(f"circus: {exc}\n")
        return 2
    except ValueError as exc:
        sys.stderr.write(f"circus: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
