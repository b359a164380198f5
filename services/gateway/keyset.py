"""The gateway's signing keys: Ed25519 key pairs in a file of the installation's own, with rotation.

The file (JSON, mode 0600) holds `{"keys": [{"kid", "private_pem", "created", "retired"}]}`. The
newest key signs; the older ones still verify until every token they signed has expired, then
`prune` removes them. `python -m services.gateway.keyset ensure|rotate|prune|public FILE` manages
it; `make up` runs `ensure` under `.local/secrets/`. Nothing in the repository signs anything at
run time: the development key set in `deploy/dev/` is refused unless development is declared.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.accesstoken import ALGORITHM

# SHA-256 thumbprints of public keys that ship in the repository (deploy/dev/jwt-keys.dev.json):
# anyone can sign with them, so a gateway refuses them unless told it is development.
SHIPPED_THUMBPRINTS = frozenset({"KIvglRlpDlrNTfXvXbndaiyiQ162IYI39NEP914ppwk"})


class KeySetError(ValueError):
    """The key file is missing, unreadable, empty or not allowed here; the message says what to do."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey
    created: int
    retired: int | None = None

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def jwk(self) -> dict[str, str]:
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64(raw),
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }

    def thumbprint(self) -> str:
        """RFC 7638 thumbprint of the public key."""
        jwk = self.jwk()
        canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
        return _b64(hashlib.sha256(canonical.encode()).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(now: int | None = None) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    key = SigningKey("", private, now or int(time.time()))
    # The kid is derived from the key, so two installations never share one by chance.
    return SigningKey(key.thumbprint()[:16], private, key.created)


def _encode(keys: list[SigningKey]) -> str:
    entries = []
    for k in keys:
        pem = k.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        entries.append({"kid": k.kid, "private_pem": pem, "created": k.created, "retired": k.retired})
    return json.dumps({"keys": entries}, indent=2) + "\n"


def read(path: str | Path) -> list[SigningKey]:
    """The keys in the file, oldest first; KeySetError when it cannot be used."""
    try:
        doc = json.loads(Path(path).read_text())
        keys = []
        for entry in doc["keys"]:
            private = serialization.load_pem_private_key(entry["private_pem"].encode(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise KeySetError(f"{path}: key {entry['kid']!r} is not an Ed25519 key")
            keys.append(SigningKey(str(entry["kid"]), private, int(entry["created"]), entry.get("retired")))
    except FileNotFoundError:
        raise KeySetError(
            f"no signing key file at {path}: create one with "
            f"`python -m services.gateway.keyset ensure {path}` (make up does)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeySetError(f"{path} is not a usable key file: {exc}") from None
    if not keys:
        raise KeySetError(f"{path} holds no keys; run `python -m services.gateway.keyset rotate {path}`")
    return keys


def write(path: str | Path, keys: list[SigningKey]) -> None:
    """Replace the file atomically, readable by its owner only."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_encode(keys))
    os.replace(tmp, target)


def rotate(keys: list[SigningKey], now: int | None = None) -> list[SigningKey]:
    """A new signing key after the others; the one that signed until now is marked retired."""
    now = now or int(time.time())
    kept = [k if k.retired else SigningKey(k.kid, k.private, k.created, now) for k in keys]
    return [*kept, new_key(now)]


def prune(keys: list[SigningKey], max_token_ttl: int, now: int | None = None) -> list[SigningKey]:
    """Drop retired keys whose every token has expired; the signing key always stays."""
    now = now or int(time.time())
    return [k for k in keys[:-1] if k.retired is None or k.retired + max_token_ttl > now] + keys[-1:]


class KeySet:
    """The keys the gateway signs and verifies with, re-read when the file changes (rotation)."""

    def __init__(self, path: str, development: bool = False) -> None:
        self.path = path
        self.development = development
        self._mtime = -1.0
        self.keys: list[SigningKey] = []
        self.public: dict[str, Ed25519PublicKey] = {}
        self.reload()

    def __repr__(self) -> str:
        return f"KeySet(path={self.path!r}, kids={[k.kid for k in self.keys]})"

    @property
    def signing(self) -> SigningKey:
        return self.keys[-1]

    def reload(self) -> bool:
        """Re-read the file if it changed; True when it did. KeySetError when it is not usable."""
        mtime = os.stat(self.path).st_mtime if os.path.exists(self.path) else -1.0
        if mtime == self._mtime and self.keys:
            return False
        keys = read(self.path)
        shipped = [k.kid for k in keys if k.thumbprint() in SHIPPED_THUMBPRINTS]
        if shipped and not self.development:
            raise KeySetError(
                f"{self.path} holds a key that ships in the repository ({', '.join(shipped)}), so anyone "
                "could sign tokens with it: generate your own with `python -m services.gateway.keyset "
                "ensure FILE`, or set SNAPLINE_DEVELOPMENT=true on a development machine"
            )
        self.keys = keys
        self.public = {k.kid: k.public for k in keys}
        self._mtime = mtime
        return True

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway.keyset", description=__doc__)
    parser.add_argument("action", choices=("ensure", "rotate", "prune", "public"))
    parser.add_argument("file")
    parser.add_argument("--max-token-ttl", type=int, default=3600, help="prune: seconds a token may live")
    args = parser.parse_args(argv)
    path = Path(args.file)
    if args.action == "ensure":
        if path.exists():
            read(path)
            return 0
        write(path, [new_key()])
        print(f"wrote a new Ed25519 signing key to {path}", file=sys.stderr)
    elif args.action == "rotate":
        write(path, rotate(read(path)))
        print(f"rotated: {read(path)[-1].kid} signs from now on", file=sys.stderr)
    elif args.action == "prune":
        write(path, prune(read(path), args.max_token_ttl))
    else:
        print(json.dumps({"keys": [k.jwk() for k in read(path)]}, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeySetError as exc:
        print(f"keyset: {exc}", file=sys.stderr)
        sys.exit(1)
