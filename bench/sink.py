"""The acknowledgement benchmark's relay: an aiosmtpd sink in a process of its own.

    python bench/sink.py PORT

Accepts every mail and prints one line per message as it arrives: the In-Reply-To header's
value and the arrival time (``time.monotonic()``, comparable with the sender's clock in another
process on the same machine). Kept out of the sender's process so that neither slows the other.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

from aiosmtpd.smtp import SMTP

IN_REPLY_TO = re.compile(rb"^In-Reply-To:\s*<([^>\r\n]*)>", re.IGNORECASE | re.MULTILINE)


class Recorder:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        found = IN_REPLY_TO.search(envelope.original_content)
        sys.stdout.write(f"{found.group(1).decode() if found else '-'} {time.monotonic():.6f}\n")
        sys.stdout.flush()
        return "250 2.0.0 Ok: queued"


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(
        lambda: SMTP(Recorder(), decode_data=False, enable_SMTPUTF8=True), "127.0.0.1", port
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
