"""Render an nginx template of deploy/nginx/: ${NGINX_*} placeholders only, like the
nginx image's envsubst; nginx's own $variables are left alone.

    python deploy/render.py TEMPLATE NAME=VALUE ... > OUTPUT

Used by scripts/cluster.sh and tests/cluster.py. A placeholder left without a value
is an error (a half-rendered configuration would fail later, less clearly).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{(NGINX_[A-Z0-9_]+)\}")


def render(template: str | Path, values: dict[str, str]) -> str:
    text = Path(template).read_text()
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise KeyError(f"{template}: no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    values = dict(arg.split("=", 1) for arg in argv[1:])
    try:
        sys.stdout.write(render(argv[0], values))
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
