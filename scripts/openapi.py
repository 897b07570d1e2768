"""Write the API's OpenAPI schema to ``docs/openapi.json`` (a test checks it matches the app).

python scripts/openapi.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from monitor.api import create_app
from monitor.settings import Settings

OUT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        schema = create_app(Settings(home=Path(home), database_url=None, redis_url=None)).openapi()
    OUT.write_text(json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
