"""A real Dovecot IMAP server for the tests, on a free loopback port, in a private directory.

Debian's ``dovecot-imapd`` (scripts/test installs it). Dovecot refuses to run its login process
as root, so the config names ``default_internal_user = dovecot`` and ``default_login_user =
dovenull``; users come from a passwd-file; mail lives in maildirs owned by ``dovecot``.
``capabilities`` overrides what the server advertises (e.g. without IDLE or MOVE) to exercise
the client's fallbacks. ``lmtp=True`` also runs Dovecot's LMTP server (Debian's ``dovecot-lmtpd``)
so mail is delivered the way an MTA hands it over, with the trace fields Dovecot adds
(Return-Path, Delivered-To, Received): :meth:`Dovecot.deliver`. ``oauth2_introspection_url``
adds the ``oauth2`` passdb: XOAUTH2 logins whose token that URL says is active.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

from tests.support.workers import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVECOT_LMTP = Path("/usr/lib/dovecot/lmtp")
USER = "helpdesk@example.com"
PASSWORD = "s3cret-imap"
FULL_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT LITERAL+ UIDPLUS MOVE NAMESPACE CHILDREN"
)


def dovecot_unavailable_reason() -> str | None:
    if not Path(DOVECOT).exists():
        return "Dovecot is not installed (Debian package dovecot-imapd; scripts/test installs it)"
    if os.geteuid() != 0:
        return "the Dovecot fixture runs the server as root with dovecot/dovenull users"
    for user in ("dovecot", "dovenull"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"system user {user} is missing (installed with dovecot-core)"
    return None


def dovecot_lmtp_unavailable_reason() -> str | None:
    if reason := dovecot_unavailable_reason():
        return reason
    if not DOVECOT_LMTP.exists():
        return "Dovecot's LMTP server is missing (Debian package dovecot-lmtpd; scripts/test installs it)"
    return None


class Dovecot:
    """Start with ``with Dovecot() as server:``; ``server.port``, ``server.client()``."""

    def __init__(
        self, capabilities: str | None = None, *, lmtp: bool = False, oauth2_introspection_url: str = ""
    ) -> None:
        self.oauth2_introspection_url = oauth2_introspection_url
        self.port = free_port()
        self.lmtp_port = free_port() if lmtp else None
        self.capabilities = capabilities
        self.base = Path(tempfile.mkdtemp(prefix="intaked-dovecot-", dir="/tmp"))
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _config(self) -> str:
        base = self.base
        capability = f"imap_capability = {self.capabilities}\n" if self.capabilities else ""
        lmtp = (
            f"""
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
"""
            if self.lmtp_port
            else ""
        )
        return f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap{" lmtp" if self.lmtp_port else ""}
{lmtp}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login{" xoauth2 oauthbearer" if self.oauth2_introspection_url else ""}
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{base}/mail/%u
{capability}
{self._oauth2_passdb()}
passdb {{
  driver = passwd-file
{"  mechanisms = plain login" if self.oauth2_introspection_url else ""}
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
"""

    def _oauth2_passdb(self) -> str:
        """With ``oauth2_introspection_url``: XOAUTH2/OAUTHBEARER logins checked by RFC 7662
        introspection there (tests/support/token_endpoint.py); the token's username must match."""
        if not self.oauth2_introspection_url:
            return ""
        (self.base / "dovecot-oauth2.conf.ext").write_text(
            f"""introspection_mode = post
introspection_url = {self.oauth2_introspection_url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""
        )
        return f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {self.base}/dovecot-oauth2.conf.ext
}}"""

    def start(self) -> None:
        base = self.base
        os.chmod(base, 0o755)
        (base / "mail").mkdir()
        shutil.chown(base / "mail", "dovecot", "dovecot")
        (base / "passwd").write_text(f"{USER}:{PASSWORD}\n")
        (base / "dovecot.conf").write_text(self._config())
        self._proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(base / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.login(USER, PASSWORD)
        return client

    def append(self, messages: list[bytes], folder: str = "INBOX") -> None:
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in messages:
                client.append(folder, raw)

    def deliver(self, raw: bytes, sender: str, recipient: str = USER) -> None:
        """Deliver ``raw`` through Dovecot's LMTP server (``lmtp=True``), as an MTA would."""
        assert self.lmtp_port is not None, "start Dovecot with lmtp=True"
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as client:
            client.sendmail(sender, [recipient], raw)

    def count(self, folder: str) -> int:
        with self.client() as client:
            if not client.folder_exists(folder):
                return 0
            return int(client.select_folder(folder, readonly=True)[b"EXISTS"])

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        subprocess.run(["pkill", "-f", f"{self.base}/dovecot.conf"], check=False)
        shutil.rmtree(self.base, ignore_errors=True)
