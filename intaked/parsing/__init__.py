"""Mail parsing for intaked: raw RFC 5322 bytes in, a :class:`ParsedMessage` out.

:func:`parse_message` is a pure function that never raises; what it could not read cleanly is listed in
``ParsedMessage.problems``. It copes with the mail a Taiwanese helpdesk actually receives: Big5/CP950 and
GBK under older labels, raw 8-bit headers, broken MIME, HTML-only Outlook mail, TNEF ``winmail.dat`` and
forwarded messages. The modules:

* :mod:`.mime` - the entry point; reads each header field under its own guard;
* :mod:`.body` - walks the MIME tree for body text, HTML and attachments;
* :mod:`.fingerprint` - the content fingerprint that tells a resent copy from a reused Message-ID;
* :mod:`.headerblock` - recovers a header block with unindented continuations or a junk first line;
* :mod:`.headers` - RFC 2047 encoded-words, RFC 6532 raw 8-bit headers, addresses, message ids, dates;
* :mod:`.params` - Content-Type / Content-Disposition parameters, RFC 2231;
* :mod:`.charsets` - charset labels and decoding with detection;
* :mod:`.transfer` - base64 / quoted-printable / uuencode bodies;
* :mod:`.html` - HTML to text;
* :mod:`.filenames` - safe attachment names;
* :mod:`.tnef` - Outlook TNEF payloads;
* :mod:`.noise` - auto-reply, bounce and mailing-list indicators.
"""

from .mime import parse_message
from .model import Address, ParsedAttachment, ParsedMessage

__all__ = ["Address", "ParsedAttachment", "ParsedMessage", "parse_message"]
