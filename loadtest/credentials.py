"""The seeder's credentials file (photos-seed writes it; the load generators read it).

One JSON object a line: `{"user_id": "...", "username": "...", "token": "..."}`, a real session
token of a seeded account. Its place: PHOTOS_LOAD_CREDENTIALS, default `.stack/load/credentials.jsonl`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_CREDENTIALS = Path(__file__).resolve().parent.parent / ".stack" / "load" / "credentials.jsonl"


class LoadSetupError(Exception):
    """The load cannot start; the message says why in one line."""


def credentials_path() -> Path:
    return Path(os.environ.get("PHOTOS_LOAD_CREDENTIALS") or DEFAULT_CREDENTIALS)


def load_credentials(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise LoadSetupError(
            f"no credentials file at {path}: run photos-seed first (or set PHOTOS_LOAD_CREDENTIALS)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise LoadSetupError(f"cannot read credentials file {path}: {error}") from None
    credentials = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            credentials.append(
                {"user_id": str(entry["user_id"]), "username": str(entry["username"]), "token": str(entry["token"])}
            )
        except (ValueError, KeyError, TypeError):
            raise LoadSetupError(f'{path}:{number} is not a {{"user_id", "username", "token"}} JSON object') from None
    if not credentials:
        raise LoadSetupError(f"credentials file {path} is empty: run photos-seed first")
    return credentials
