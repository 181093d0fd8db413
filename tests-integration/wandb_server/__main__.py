"""``python -m wandb_server --port P --data-dir D [--entity E]``: serve until killed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .app import WandbTestServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wandb_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--entity", default="local-entity", help="the viewer's default entity")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error(f"--host {args.host!r}: the test server only listens on loopback")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    server = WandbTestServer(args.host, args.port, args.data_dir, args.entity, args.verbose)
    print(f"wandb test server on http://{server.host_port} data {args.data_dir}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
