"""The schema of OAuth2 sign-in (Microsoft 365 / Exchange Online): ``auth = "xoauth2"`` and the
``oauth2`` table of an ``[[imap]]`` mailbox and of ``[outbound_mail]``.

Tokens come from the client-credentials flow: the app registered in Entra ID (``client_id``, with
its ``client_secret``, or a certificate uploaded to the app: ``certificate_file``, a PEM file with
its private key and the certificate) asks the tenant's token endpoint for a token for ``scope``.
``token_url`` is the tenant's endpoint unless set (tests point it at a local stand-in).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator

from intaked.config.fields import Section

#: The resource Exchange Online's IMAP and SMTP accept app tokens for.
DEFAULT_SCOPE = "https://outlook.office365.com/.default"
TOKEN_URL_TEMPLATE = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"

#: How a mailbox or the relay is logged in to: a password, or an OAuth2 access token (XOAUTH2).
AuthMode = Literal["password", "xoauth2"]


@dataclass(frozen=True)
class ClientCertificate:
    """What signs a client assertion: the private key (PEM) and the certificate's SHA-1
    thumbprint, base64url (the JWT header ``x5t`` Entra ID finds the certificate by)."""

    private_key_pem: bytes
    thumbprint: str


class OAuth2Settings(Section):
    """``oauth2 = { tenant, client_id, client_secret | certificate_file, token_url, scope }``."""

    tenant: str = ""
    client_id: str
    client_secret: SecretStr = SecretStr("")
    certificate_file: str = ""
    token_url: str = ""
    scope: str = DEFAULT_SCOPE

    @model_validator(mode="after")
    def _endpoint_known(self) -> OAuth2Settings:
        if not (self.tenant or self.token_url):
            raise ValueError("needs tenant (the Entra ID tenant id or domain) or token_url")
        if self.token_url and not self.token_url.startswith(("https://", "http://")):
            raise ValueError(f"token_url {self.token_url!r} is not an http(s) URL")
        if self.certificate_file:
            if self.client_secret.get_secret_value():
                raise ValueError("set client_secret or certificate_file, not both")
            self.certificate()  # a file that cannot sign is told now, not at the first login
        return self

    @property
    def effective_token_url(self) -> str:
        """``token_url``, else the tenant's Microsoft identity platform v2.0 token endpoint."""
        return self.token_url or TOKEN_URL_TEMPLATE.format(tenant=self.tenant)

    def certificate(self) -> ClientCertificate | None:
        """The client certificate of ``certificate_file``, read now (a renewed file is picked up
        at the next token); None when a secret is used. A ValueError names the key and why."""
        if not self.certificate_file:
            return None
        return load_client_certificate(certificate_path(self.certificate_file))


def certificate_path(value: str) -> Path:
    """``value``; a relative path is taken in systemd's ``$CREDENTIALS_DIRECTORY`` when set
    (``LoadCredential=m365.pem:/etc/intaked/m365.pem`` and ``certificate_file = "m365.pem"``)."""
    path = Path(value)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    return Path(credentials) / path if credentials and not path.is_absolute() else path


def load_client_certificate(path: Path) -> ClientCertificate:
    """The RSA private key and the certificate of one PEM file, checked to belong together. The
    errors say what is wrong, never what the file holds."""
    from cryptography import x509  # only where a certificate is configured: a heavy import
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"certificate_file {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"certificate_file {str(path)!r} holds no unencrypted PEM private key") from None
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError(f"certificate_file {str(path)!r} holds no PEM certificate") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"certificate_file {str(path)!r}: the private key is not RSA (Entra ID signs RS256)")
    public = certificate.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise ValueError(f"certificate_file {str(path)!r}: the private key is not the certificate's")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    thumbprint = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA1())).rstrip(b"=")
    return ClientCertificate(pem, thumbprint.decode("ascii"))


def check_auth(auth: AuthMode, oauth2: OAuth2Settings | None) -> None:
    """A ValueError naming the key when ``auth = "xoauth2"`` has no ``oauth2`` table."""
    if auth == "xoauth2" and oauth2 is None:
        raise ValueError(
            'auth = "xoauth2" needs an oauth2 table (tenant, client_id, client_secret or certificate_file)'
        )
