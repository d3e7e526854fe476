"""Channel adapters: each turns the outside world (SMTP/LMTP, later IMAP and the hotline) into a
stored raw inbound item, and tells its peer "done" only once that item is committed."""
