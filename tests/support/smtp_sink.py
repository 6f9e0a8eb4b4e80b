"""A real SMTP server (aiosmtpd) for the notification tests.

Usage: python3 smtp_sink.py PORT OUT_DIR [USER PASSWORD]

Listens on 127.0.0.1:PORT, requires AUTH (PLAIN/LOGIN, allowed without TLS on loopback)
when USER is given, and writes every accepted message to OUT_DIR/NNNNN.json as
{"mail_from", "rcpt_tos", "subject", "body", "raw", "user"}. Prints "READY" when listening;
runs until killed or until its standard input closes.
"""

import asyncio
import email
import email.policy
import json
import os
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"] or ""),
            "body": part.get_content() if part is not None else "",
            "raw": raw.decode("utf-8", "replace"),
            "user": getattr(session, "eci_test_user", None),
        }
        tmp = os.path.join(self.out_dir, f".{self.count:05d}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out_dir, f"{self.count:05d}.json"))
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() and auth_data.password == password.encode():
            session.eci_test_user = user
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return check


def main():
    port, out_dir = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    kwargs = {}
    if len(sys.argv) >= 5:
        kwargs = {
            "authenticator": authenticator(sys.argv[3], sys.argv[4]),
            "auth_required": True,
            "auth_require_tls": False,
        }
    controller = Controller(Sink(out_dir), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin or kills us
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
