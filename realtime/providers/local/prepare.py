"""One-time preparation of the embedded models: `python -m realtime.providers.local.prepare`.

scripts/install.sh runs it so that the first interview does not wait for it; a worker
that finds nothing prepared does it on first use. Writes under VAR_DIR/models.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interview_site.settings")
    import django

    django.setup()
    from .moonshine_model import prepare

    path = prepare()
    print(f"Moonshine base-en ready in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
