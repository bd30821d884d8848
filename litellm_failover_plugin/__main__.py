"""`python -m litellm_failover_plugin check --config config.yaml`: validate and show the plans."""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load_settings
from .routing import compile_routes


def check(path: str) -> int:
    try:
        settings = load_settings(path)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    for plan in compile_routes(settings).values():
        state = "" if plan.enabled else "  (failover off: first attempt only)"
        print(f"route {plan.name}: policy {plan.policy}, {len(plan.candidates)} candidates{state}")
        for i, c in enumerate(plan.candidates, 1):
            catch = f"  catch {c.catch.describe()}" if c.catch else ""
            print(f"  {i:>2}. {c.backend}:{c.model} key {c.key}  falls over on {c.falls_over.describe()}{catch}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litellm_failover_plugin")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate failover_settings and print every route's attempt order")
    p.add_argument("--config", required=True, help="the LiteLLM config.yaml")
    args = parser.parse_args(argv)
    return check(args.config)


if __name__ == "__main__":
    sys.exit(main())
