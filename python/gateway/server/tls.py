"""TLS termination: `gateway start --ssl-certfile PATH --ssl-keyfile PATH [--ssl-keyfile-password P]`
(or GATEWAY_SSL_CERTFILE, GATEWAY_SSL_KEYFILE, GATEWAY_SSL_KEYFILE_PASSWORD).

The files are checked by the supervisor before anything listens: both or neither, readable, and
a certificate chain and private key that belong together (loaded once with the standard
library's OpenSSL, as Granian itself does before it hands them to its workers). A problem is
one line naming the file and why; `gateway start` exits 2 with it.

An encrypted key is decrypted here, by the supervisor, and handed to Granian unencrypted:
Granian 2.8's workers panic on every standard encrypted PKCS#8 key (PBES2 with AES, scrypt or
PBES1, as OpenSSL and `cryptography` write them; a traditional `Proc-Type: 4,ENCRYPTED` key it
does not read at all), so its own `ssl_key_password` would crash-loop the gateway. The clear key
goes to a private file (mode 0600 in a 0700 directory, on tmpfs when there is one, so it never
reaches a disk) that every worker, respawned ones included, reads, removed when serving ends; one
left by a supervisor killed outright is removed by the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from typing import NamedTuple

from gateway.server.process import private_base_directory, remove_stale_directories

KEY_DIR_PREFIX = "gateway-tls-"

MIN_TLS_VERSION = "1.2"  # TLS 1.2 and 1.3; Granian's own default would refuse TLS 1.2 clients


class TlsFiles(NamedTuple):
    certfile: str
    keyfile: str
    password: str | None
    clear_key: bytes | None = None  # an encrypted key, decrypted (PKCS#8 PEM), for Granian


class TlsError(ValueError):
    """Files that cannot serve TLS; the message is one line."""


def tls_files(certfile: str | None, keyfile: str | None, password: str | None) -> TlsFiles | None:
    """The checked TLS files, None when TLS is off (neither given); TlsError otherwise."""
    certfile, keyfile, password = certfile or None, keyfile or None, password or None
    if certfile is None and keyfile is None:
        if password is not None:
            raise TlsError("--ssl-keyfile-password (GATEWAY_SSL_KEYFILE_PASSWORD) needs --ssl-keyfile")
        return None
    if certfile is None or keyfile is None:
        raise TlsError(
            "TLS needs both --ssl-certfile and --ssl-keyfile (GATEWAY_SSL_CERTFILE, GATEWAY_SSL_KEYFILE)"
        )
    for what, path in (
        ("certificate file (--ssl-certfile)", certfile),
        ("key file (--ssl-keyfile)", keyfile),
    ):
        try:
            with open(path, "rb") as file:
                file.read(1)
        except OSError as exc:
            raise TlsError(f"cannot read TLS {what} {path}: {(exc.strerror or str(exc)).lower()}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # a callable password: an encrypted key without one fails here instead of prompting
        context.load_cert_chain(certfile, keyfile, password if password is not None else _no_password)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsError(
            f"cannot serve TLS with {certfile} and {keyfile}: {_diagnose(certfile, keyfile, password, exc)}"
        ) from None
    return TlsFiles(certfile, keyfile, password, _decrypted(keyfile, password))


def _decrypted(keyfile: str, password: str | None) -> bytes | None:
    """The key as unencrypted PKCS#8 PEM when it is encrypted (OpenSSL just accepted it with
    `password`), else None: Granian reads it as it is."""
    if password is None:
        return None
    from cryptography.hazmat.primitives import serialization

    with open(keyfile, "rb") as file:
        data = file.read()
    try:
        key = serialization.load_pem_private_key(data, password.encode())
    except TypeError:  # not encrypted: the password is not needed
        return None
    except ValueError as exc:  # OpenSSL read it, `cryptography` cannot: an unusual key type
        raise TlsError(f"cannot decrypt TLS key {keyfile}: {exc}") from None
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@contextlib.contextmanager
def granian_files(tls: TlsFiles | None) -> Iterator[TlsFiles | None]:
    """In the supervisor, while serving: the files Granian is given. An encrypted key becomes
    a private file holding the clear key, removed when serving ends."""
    if tls is None or tls.clear_key is None:
        yield tls
        return
    base = private_base_directory()
    remove_stale_directories(base, KEY_DIR_PREFIX)
    directory = tempfile.mkdtemp(prefix=f"{KEY_DIR_PREFIX}{os.getpid()}-", dir=base)  # mode 0700
    in_use = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(in_use, fcntl.LOCK_SH)  # how a later start tells it is in use
        path = os.path.join(directory, "key.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(tls.clear_key)
        yield TlsFiles(tls.certfile, path, None)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        os.close(in_use)


def _no_password() -> str:
    raise ValueError("encrypted key")


def _diagnose(certfile: str, keyfile: str, password: str | None, exc: BaseException) -> str:
    """Why OpenSSL refused the pair, in words: its own reason ("PEM lib") rarely says."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        with open(certfile, "rb") as file:
            x509.load_pem_x509_certificates(file.read())
    except ValueError:
        return f"{certfile} is not a PEM certificate (chain)"
    try:
        with open(keyfile, "rb") as file:
            load_pem_private_key(file.read(), password.encode() if password is not None else None)
    except TypeError:
        return "the key is encrypted: give --ssl-keyfile-password (or GATEWAY_SSL_KEYFILE_PASSWORD)"
    except ValueError as error:
        if password is not None and "decrypt" in str(error).lower():
            return "wrong --ssl-keyfile-password for the encrypted key"
        return f"{keyfile} is not a PEM private key"
    except Exception:  # an unsupported key type: OpenSSL's reason below says more
        pass
    reason = str(getattr(exc, "reason", None) or exc).replace("_", " ").lower()
    if "key values mismatch" in reason:
        return "the key does not belong to the certificate"
    return reason
