"""Bearer tokens with roles, from a YAML file of SHA-256 hashes (never the tokens).

- ``finance``: sees every account.
- ``account``: bound to one account id; sees only that account's history rows,
  aggregates, quota and estimates (anything else is 403).

File format (config/api-tokens.yaml; docs/api.md)::

    tokens:
      - name: finance-team          # for logs; never the token
        sha256: 9f86d0...           # sha256 hex of the token (printf %s TOKEN | sha256sum)
        role: finance
      - name: acme-portal
        sha256: 60303a...
        role: account
        account: acct-partner-acme

Only hashes are stored, so the file is not a secret worth stealing; the token
is looked up by its hash (a timing difference reveals nothing about a stored
token, only about the hash of the guess).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from processors.errors import RatingError
from stream.strict_yaml import load_yaml, yaml_error_text

TOKENS_FILE_ENV = "RATING_API_TOKENS_FILE"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class TokenFileError(RatingError):
    """The token file is missing or wrong; the message names the file and the entry."""


class Role(StrEnum):
    FINANCE = "finance"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is from."""

    name: str
    role: Role
    account: str | None = None  # set for (and only for) account tokens

    def may_see(self, account: str) -> bool:
        return self.role is Role.FINANCE or account == self.account


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenRegistry:
    """Token hash -> principal."""

    def __init__(self, principals: Mapping[str, Principal]):
        self._by_hash = dict(principals)

    def __len__(self) -> int:
        return len(self._by_hash)

    def principal(self, token: str) -> Principal | None:
        return self._by_hash.get(hash_token(token))

    @classmethod
    def from_entries(cls, entries: Iterable[Mapping[str, Any]], where: str = "tokens"
                     ) -> TokenRegistry:
        by_hash: dict[str, Principal] = {}
        for index, entry in enumerate(entries):
            here = f"{where}: tokens[{index}]"
            digest, principal = _entry(entry, here)
            if digest in by_hash:
                raise TokenFileError(f"{here}: the same token hash as "
                                     f"{by_hash[digest].name!r}")
            by_hash[digest] = principal
        return cls(by_hash)

    @classmethod
    def load(cls, path: Path) -> TokenRegistry:
        try:
            raw = load_yaml(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise TokenFileError(f"{path}: not UTF-8 text: {exc.reason}") from None
        except OSError as exc:
            raise TokenFileError(f"{path}: cannot read the API token file: {exc.strerror}; "
                                 f"give --tokens FILE or set {TOKENS_FILE_ENV}") from None
        except yaml.YAMLError as exc:
            raise TokenFileError(f"{path}: {yaml_error_text(exc)}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("tokens"), list):
            raise TokenFileError(f"{path}: expected a mapping with a 'tokens' list")
        if not all(isinstance(entry, dict) for entry in raw["tokens"]):
            raise TokenFileError(f"{path}: every entry of 'tokens' must be a mapping")
        return cls.from_entries(raw["tokens"], str(path))


def _entry(entry: Mapping[str, Any], here: str) -> tuple[str, Principal]:
    unknown = sorted(set(entry) - {"name", "sha256", "role", "account"})
    if unknown:
        raise TokenFileError(f"{here}: unknown fields {unknown}")
    raw_digest = entry.get("sha256", "")
    if not isinstance(raw_digest, str):  # YAML reads an all-digit hash as a number
        raise TokenFileError(f"{here}: 'sha256' must be a string: quote it")
    name, digest = str(entry.get("name", "")), raw_digest.lower()
    if not name:
        raise TokenFileError(f"{here}: 'name' is required")
    if not _SHA256_HEX.match(digest):
        raise TokenFileError(f"{here} ({name}): 'sha256' must be 64 hex digits, the SHA-256 "
                             "of the token (printf %s TOKEN | sha256sum)")
    try:
        role = Role(str(entry.get("role")))
    except ValueError:
        raise TokenFileError(f"{here} ({name}): 'role' must be finance or account, got "
                             f"{entry.get('role')!r}") from None
    account = entry.get("account")
    if role is Role.ACCOUNT and not account:
        raise TokenFileError(f"{here} ({name}): an account token needs 'account'")
    if role is Role.FINANCE and account:
        raise TokenFileError(f"{here} ({name}): a finance token sees every account; "
                             "remove 'account'")
    return digest, Principal(name, role, str(account) if account else None)
