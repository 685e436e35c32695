"""Sending mail over SMTP, and the local SMTP sink that stands in for a relay when embedded.

Production: `send()` talks to the relay named by the environment (`HQLAKE_SMTP_HOST`, `_PORT`,
`_USER`, `_PASSWORD`, `_STARTTLS`, `_FROM`, read by `infra.settings.smtp_config`); nothing
secret is in code or DAG files.

Embedded: `SmtpSink` is a real SMTP server (aiosmtpd) on 127.0.0.1 that writes every message it
accepts to `HQLAKE_HOME/outbox/<timestamp>-<n>.eml`, envelope first (`X-Envelope-From`,
`X-Envelope-To` headers), so the e-mails of a run can be opened with any mail client and read
back by tests exactly as a relay would have received them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import smtplib
import threading
from collections.abc import Iterable
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

from infra.home import private_dir
from infra.localhost import free_port
from infra.settings import SmtpConfig, smtp_config

__all__ = ["SmtpConfig", "SmtpSink", "send", "smtp_config"]

log = logging.getLogger(__name__)


def send(messages: Iterable[EmailMessage], config: SmtpConfig | None = None) -> list[str]:
    """Send `messages` over one SMTP session; returns their Message-IDs in order.

    A refused recipient or a broken connection raises (smtplib's errors): the caller decides
    whether that is worth a retry. Messages without a From get the configured sender."""
    config = config or smtp_config()
    if not config.host:
        raise RuntimeError("HQLAKE_SMTP_HOST is not set: no SMTP relay to send through")
    sent = []
    with smtplib.SMTP(config.host, config.port, timeout=30) as smtp:
        if config.starttls:
            smtp.starttls()
        if config.user:
            smtp.login(config.user, config.password or "")
        for message in messages:
            if not message["From"]:
                message["From"] = config.sender
            smtp.send_message(message)
            sent.append(str(message["Message-ID"] or ""))
    return sent


class _OutboxHandler:
    """aiosmtpd handler: one .eml file per accepted message, written atomically."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.counter = itertools.count(1)
        self.lock = threading.Lock()
        self.received: list[Path] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # the aiosmtpd hook's name
        with self.lock:
            n = next(self.counter)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.outbox / f"{stamp}-{n:04d}.eml"
        envelope_headers = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        partial = path.with_suffix(".part")
        partial.write_bytes(envelope_headers + envelope.original_content)
        partial.rename(path)  # readers of the outbox never see half a message
        self.received.append(path)
        return "250 Message accepted for delivery"


class SmtpSink:
    """A local SMTP server writing every message to an outbox folder; a context manager.

    with SmtpSink(settings().outbox) as sink:
        send(messages, sink.config())
    """

    def __init__(self, outbox: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.outbox = Path(outbox)
        self.host = host
        self.port = port
        self._handler = _OutboxHandler(self.outbox)
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Path]:
        """The .eml files written since this sink started, in arrival order."""
        return list(self._handler.received)

    def start(self) -> SmtpSink:
        private_dir(self.outbox)  # the e-mails carry failing record keys
        self.port = self.port or free_port()
        self._controller = Controller(
            self._handler,
            hostname=self.host,
            port=self.port,
            enable_SMTPUTF8=True,
            data_size_limit=64 * 1024 * 1024,
        )
        self._controller.start()
        log.info("SMTP sink on %s:%s writing to %s", self.host, self.port, self.outbox)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def config(self, sender: str | None = None) -> SmtpConfig:
        sender = sender or smtp_config().sender
        return SmtpConfig(self.host, int(self.port or 0), None, None, False, sender)

    def environment(self) -> dict[str, str]:
        """The HQLAKE_SMTP_* variables that point `send()` at this sink."""
        return {
            "HQLAKE_SMTP_HOST": self.host,
            "HQLAKE_SMTP_PORT": str(self.port),
            "HQLAKE_SMTP_STARTTLS": "false",
            "HQLAKE_SMTP_USER": "",
            "HQLAKE_SMTP_PASSWORD": "",
        }
