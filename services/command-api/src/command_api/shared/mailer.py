"""Outgoing mail: rows of ``mail_outbox`` (written in the transaction that needs them) sent over SMTP.

Without an SMTP host (dev), a mail is written to the log instead, so the
verification or reset code can be read there. Once a mail is accepted, its
body (which holds the code) is erased from the table.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage

import asyncpg

from command_api.settings import MailSettings
from command_api.shared.outbox import _sleep

log = logging.getLogger(__name__)


async def enqueue(conn: asyncpg.Connection, recipient: str, subject: str, body: str) -> None:
    await conn.execute("INSERT INTO mail_outbox (recipient, subject, body) VALUES ($1, $2, $3)",
                       recipient, subject, body)


def verification_mail(name: str, code: str, link: str) -> tuple[str, str]:
    return ("Verify your zapstream e-mail address",
            f"Hello {name},\n\nYour verification code is: {code}\n\nOr open this link: {link}\n\n"
            "If you did not sign up, ignore this message.\n")


def reset_mail(name: str, code: str, link: str) -> tuple[str, str]:
    return ("Reset your zapstream password",
            f"Hello {name},\n\nYour password reset code is: {code}\n\nOr open this link: {link}\n\n"
            "If you did not ask for this, ignore this message; your password is unchanged.\n")


def existing_account_mail(name: str, login_link: str, reset_link: str) -> tuple[str, str]:
    return ("Someone tried to sign up with your e-mail address",
            f"Hello {name},\n\nSomeone (maybe you) tried to create a zapstream account with this address, which "
            f"already has one. Nothing was changed.\n\nSign in: {login_link}\nForgot your password? {reset_link}\n\n"
            "If it was not you, ignore this message.\n")


def _smtp_send(settings: MailSettings, messages: list[EmailMessage]) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        for message in messages:
            smtp.send_message(message)


async def send_once(pool: asyncpg.Pool, settings: MailSettings, batch: int = 20) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT * FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL AND next_try_at <= now()
               ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
            batch,
        )
        if not rows:
            return 0
        ids = [r["id"] for r in rows]
        if settings.smtp_host is None:
            for r in rows:
                log.info("dev mail (no SMTP host configured) to %s: %s\n%s", r["recipient"], r["subject"], r["body"])
        else:
            messages = []
            for r in rows:
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = settings.sender, r["recipient"], r["subject"]
                msg.set_content(r["body"] or "")
                messages.append(msg)
            try:
                await asyncio.to_thread(_smtp_send, settings, messages)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("SMTP send failed (%s); will retry", type(exc).__name__)
                await conn.execute(
                    """UPDATE mail_outbox SET attempts = attempts + 1,
                           next_try_at = now() + make_interval(secs => least(300, 2 ^ attempts)),
                           failed_at = CASE WHEN attempts + 1 >= $2 THEN now() END
                       WHERE id = ANY($1::bigint[])""",
                    ids, settings.max_attempts,
                )
                return 0
        await conn.execute("UPDATE mail_outbox SET sent_at = now(), body = NULL WHERE id = ANY($1::bigint[])", ids)
        return len(rows)


async def run_sender(pool: asyncpg.Pool, settings: MailSettings, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        try:
            sent = await send_once(pool, settings)
            # Housekeeping: expired rate-limit windows.
            await pool.execute("DELETE FROM rate_limits WHERE window_start < now() - interval '1 day'")
        except Exception:
            log.exception("mail sender failed; retrying")
            sent = 0
        if not sent:
            await _sleep(stopping, settings.poll_interval_s)
