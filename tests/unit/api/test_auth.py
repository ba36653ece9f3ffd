"""API tokens: the YAML file of hashes, roles, and what each role may see."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from api.auth import Principal, Role, TokenFileError, TokenRegistry, hash_token
from stream.settings import REPO_ROOT

DEV_FILE = REPO_ROOT / "config" / "api-tokens.dev.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    return path


def test_hash_is_sha256_hex_of_the_token() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_the_documented_dev_tokens_resolve_to_their_roles() -> None:
    # docs/api.md publishes these three tokens for development.
    tokens = TokenRegistry.load(DEV_FILE)
    assert tokens.principal("dev-finance-token") == Principal("dev-finance", Role.FINANCE)
    assert tokens.principal("dev-acme-token") == Principal("dev-acme", Role.ACCOUNT,
                                                           "acct-partner-acme")
    assert tokens.principal("dev-eng-token") == Principal("dev-eng", Role.ACCOUNT, "acct-eng")
    assert tokens.principal("dev-finance-token ") is None


def test_the_default_token_file_has_no_tokens() -> None:
    assert len(TokenRegistry.load(REPO_ROOT / "config" / "api-tokens.yaml")) == 0


def test_roles_decide_which_accounts_are_visible() -> None:
    finance = Principal("f", Role.FINANCE)
    acme = Principal("a", Role.ACCOUNT, "acct-partner-acme")
    assert finance.may_see("acct-eng")
    assert finance.may_see("acct-partner-acme")
    assert acme.may_see("acct-partner-acme")
    assert not acme.may_see("acct-eng")


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: a, sha256: abc, role: finance}", "64 hex digits"),
    (f"{{name: a, sha256: {'a' * 64}, role: admin}}", "finance or account"),
    (f"{{name: a, sha256: {'a' * 64}, role: account}}", "needs 'account'"),
    (f"{{name: a, sha256: {'a' * 64}, role: finance, account: x}}", "remove 'account'"),
    (f"{{sha256: {'a' * 64}, role: finance}}", "'name' is required"),
    (f"{{name: a, sha256: {'a' * 64}, role: finance, token: x}}", "unknown fields"),
])
def test_a_wrong_entry_names_the_file_and_the_entry(tmp_path: Path, entry: str,
                                                    message: str) -> None:
    path = write(tmp_path, f"tokens:\n  - {entry}\n")
    with pytest.raises(TokenFileError, match=message) as raised:
        TokenRegistry.load(path)
    assert f"{path}: tokens[0]" in str(raised.value)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="RATING_API_TOKENS_FILE"):
        TokenRegistry.load(tmp_path / "missing.yaml")
    with pytest.raises(TokenFileError, match="'tokens' list"):
        TokenRegistry.load(write(tmp_path, "tokens: {}\n"))
    with pytest.raises(TokenFileError, match="quote it"):
        TokenRegistry.load(write(tmp_path, f"tokens:\n  - {{name: a, sha256: {'1' * 64}, "
                                           "role: finance}\n"))
    digest = "b" * 64
    twice = (f"tokens:\n  - {{name: a, sha256: {digest}, role: finance}}\n"
             f"  - {{name: b, sha256: {digest}, role: finance}}\n")
    with pytest.raises(TokenFileError, match="same token hash as 'a'"):
        TokenRegistry.load(write(tmp_path, twice))


def test_a_field_given_twice_in_an_entry_is_refused(tmp_path: Path) -> None:
    # Last one wins with yaml.safe_load: this entry would have been bound to acct-b.
    path = write(tmp_path, f"tokens:\n  - name: portal\n    sha256: {'c' * 64}\n"
                           "    role: account\n    account: acct-a\n    account: acct-b\n")
    with pytest.raises(TokenFileError, match="line 6, column 5: the key 'account' is given "
                                             "twice in one mapping"):
        TokenRegistry.load(path)
