"""The schema of OAuth2 sign-in (Microsoft 365 / Exchange Online): ``auth = "xoauth2"`` and the
``oauth2`` table of an ``[[imap]]`` mailbox and of ``[outbound_mail]``.

Tokens come from the client-credentials flow: the app registered in Entra ID (``client_id``, with
its ``client_secret``) asks the tenant's token endpoint for a token for ``scope``. ``token_url`` is
the tenant's endpoint unless set (tests point it at a local stand-in).
"""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, model_validator

from intaked.config.fields import Section

#: The resource Exchange Online's IMAP and SMTP accept app tokens for.
DEFAULT_SCOPE = "https://outlook.office365.com/.default"
TOKEN_URL_TEMPLATE = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"

#: How a mailbox or the relay is logged in to: a password, or an OAuth2 access token (XOAUTH2).
AuthMode = Literal["password", "xoauth2"]


class OAuth2Settings(Section):
    """``oauth2 = { tenant, client_id, client_secret, token_url, scope }``."""

    tenant: str = ""
    client_id: str
    client_secret: SecretStr = SecretStr("")
    token_url: str = ""
    scope: str = DEFAULT_SCOPE

    @model_validator(mode="after")
    def _endpoint_known(self) -> OAuth2Settings:
        if not (self.tenant or self.token_url):
            raise ValueError("needs tenant (the Entra ID tenant id or domain) or token_url")
        if self.token_url and not self.token_url.startswith(("https://", "http://")):
            raise ValueError(f"token_url {self.token_url!r} is not an http(s) URL")
        return self

    @property
    def effective_token_url(self) -> str:
        """``token_url``, else the tenant's Microsoft identity platform v2.0 token endpoint."""
        return self.token_url or TOKEN_URL_TEMPLATE.format(tenant=self.tenant)


def check_auth(auth: AuthMode, oauth2: OAuth2Settings | None) -> None:
    """A ValueError naming the key when ``auth = "xoauth2"`` has no ``oauth2`` table."""
    if auth == "xoauth2" and oauth2 is None:
        raise ValueError('auth = "xoauth2" needs an oauth2 table (tenant, client_id, client_secret)')
