"""Satisfaction surveys by mail on a real store (SQLite and PostgreSQL) with a real SMTP sink:
sent once when a ticket closes (the sweeper, ``intaked sweep``, another tool's status), answered
by a reply that scores the ticket without reopening it or opening another; the one clarification,
automatic replies, late answers, the sample and spam."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from intaked.cli import main
from intaked.sla.context import load_context
from intaked.sla.sweeper import sweep
from intaked.tickets.lifecycle import resolve
from tests.support.smtpsink import SmtpSink
from tests.surveys.desk import LIN, T0, Desk, reply


@pytest.fixture
def desk(db_url: str, sink: SmtpSink) -> Iterator[Desk]:
    d = Desk(db_url, sink)
    yield d
    d.engine.dispose()


def surveyed(desk: Desk) -> tuple[str, str]:
    """A ticket closed by the sweeper whose survey mail reached the sink: (number, Message-ID)."""
    number = desk.report()
    desk.resolve_and_close(number)
    desk.send_mail()
    return number, desk.survey(number)["message_id"]


def test_the_survey_goes_once_when_the_sweeper_closes_the_ticket(desk: Desk, sink: SmtpSink) -> None:
    number = desk.report()
    desk.resolve_and_close(number)
    closes_at = desk.ticket(number)["closed_at"]
    # A second pass, and the tracker looking again, queue nothing more.
    sweep(desk.engine, closes_at + dt.timedelta(hours=1), settings=desk.settings)
    desk.close_by_tool(number, closes_at + dt.timedelta(hours=2))
    (row,) = desk.outbox("survey")
    assert row["recipient"] == LIN and row["idempotency_key"] == f"survey:{desk.ticket(number)['id']}"
    desk.send_mail()
    surveys = [m for m in sink.messages() if "滿意度調查" in str(m.message["Subject"])]
    assert len(surveys) == 1
    mail = surveys[0].message
    assert mail["To"].addresses[0].addr_spec == LIN
    assert str(mail["Subject"]).startswith(f"[{number}] 滿意度調查 / Satisfaction survey")
    text = mail.get_body(("plain",)).get_content()
    assert "1 到 5" in text and "from 1 to 5" in text and text.index("1 到 5") < text.index("from 1 to 5")
    assert mail["Message-ID"] == f"<{desk.survey(number)['message_id']}>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert desk.kinds(number).count("survey_queued") == 1


def test_a_scored_reply_is_stored_and_the_ticket_stays_closed(desk: Desk, sink: SmtpSink) -> None:
    number, survey_id = surveyed(desk)
    before = len(desk.tickets())
    desk.mail(reply(number, survey_id, "4 處理很快，謝謝\n\n> 請問您對這次的服務滿意嗎？"))
    t = desk.ticket(number)
    assert (t["status"], t["satisfaction_score"], t["satisfaction_comment"]) == (
        "closed",
        4,
        "處理很快，謝謝",
    )
    assert t["satisfaction_at"] is not None
    assert len(desk.tickets()) == before, "no follow-up ticket"
    assert "follow_up_opened" not in desk.kinds(number) and "reopened" not in desk.kinds(number)
    answered = desk.event(number, "satisfaction_answered")
    assert answered["after"] == {"score": 4, "comment": "處理很快，謝謝"}
    assert desk.survey(number)["state"] == "answered"
    sent = len(sink.messages())
    desk.send_mail()
    assert len(sink.messages()) == sent, "a valid answer gets no mail back"
    # A second valid answer replaces the first; its comment too when it brings one.
    desk.mail(reply(number, survey_id, "5", n=2))
    t = desk.ticket(number)
    assert (t["satisfaction_score"], t["satisfaction_comment"]) == (5, "處理很快，謝謝")
    assert desk.kinds(number).count("satisfaction_answered") == 2


def test_a_reply_by_tag_and_subject_without_threading_headers_is_an_answer(desk: Desk) -> None:
    number, _ = surveyed(desk)
    desk.mail(reply(number, None, "5 非常好"))
    t = desk.ticket(number)
    assert (t["status"], t["satisfaction_score"]) == ("closed", 5)
    assert len(desk.tickets()) == 1


def test_a_reply_without_a_score_gets_exactly_one_clarification(desk: Desk, sink: SmtpSink) -> None:
    number, survey_id = surveyed(desk)
    desk.mail(reply(number, survey_id, "還不錯"))
    desk.send_mail()
    clarifications = [m for m in sink.messages() if "請以 1-5 回覆" in str(m.message["Subject"])]
    assert len(clarifications) == 1
    clarification = clarifications[0].message
    assert clarification["In-Reply-To"] == "<answer-1@example.com.tw>"
    assert f"<{survey_id}>" in clarification["References"]
    t = desk.ticket(number)
    assert (t["satisfaction_score"], t["satisfaction_comment"], t["status"]) == (None, "還不錯", "closed")
    assert desk.survey(number)["state"] == "clarified"
    # A second answer without a score: its text is the comment, and no more mail.
    desk.mail(reply(number, survey_id, "就是還不錯啊", n=2))
    desk.send_mail()
    assert len([m for m in sink.messages() if "請以 1-5 回覆" in str(m.message["Subject"])]) == 1
    assert desk.ticket(number)["satisfaction_comment"] == "就是還不錯啊"
    assert len(desk.outbox("survey_clarify")) == 1
    # Then a score still counts.
    desk.mail(reply(number, survey_id, "3", n=3))
    assert desk.ticket(number)["satisfaction_score"] == 3
    assert len(desk.tickets()) == 1


def test_an_out_of_office_reply_is_stored_but_ignored(desk: Desk) -> None:
    number, survey_id = surveyed(desk)
    desk.mail(
        reply(
            number,
            survey_id,
            "5 月 3 日前休假中，I am out of office.",
            headers="Auto-Submitted: auto-replied\n",
        )
    )
    t = desk.ticket(number)
    assert (t["satisfaction_score"], t["satisfaction_comment"], t["status"]) == (None, None, "closed")
    assert "survey_reply_ignored" in desk.kinds(number) and "message_added" in desk.kinds(number)
    assert desk.outbox("survey_clarify") == [] and len(desk.tickets()) == 1


def test_a_late_answer_is_stored_but_not_scored(desk: Desk, sink: SmtpSink) -> None:
    number, survey_id = surveyed(desk)
    late = desk.survey(number)["expires_at"] + dt.timedelta(minutes=1)
    desk.mail(reply(number, survey_id, "5"), received_at=late)
    t = desk.ticket(number)
    assert (t["satisfaction_score"], t["status"]) == (None, "closed")
    assert desk.event(number, "survey_answer_late")["detail"]["survey"] == desk.survey(number)["id"]
    assert desk.outbox("survey_clarify") == [] and len(desk.tickets()) == 1


def test_an_ordinary_reply_to_a_closed_ticket_still_opens_a_follow_up(desk: Desk) -> None:
    number, _ = surveyed(desk)
    desk.mail(
        f"From: Lin <{LIN}>\nTo: helpdesk@example.com.tw\nSubject: Re: [{number}] ERP 無法登入 1\n"
        "Message-ID: <again@example.com.tw>\nIn-Reply-To: <report-1@example.com.tw>\n\n又壞了\n"
    )
    assert len(desk.tickets()) == 2 and desk.ticket(number)["satisfaction_score"] is None


def test_a_status_closed_by_another_tool_sends_the_survey(desk: Desk) -> None:
    number = desk.report()
    desk.close_by_tool(number)
    (row,) = desk.outbox("survey")
    assert row["recipient"] == LIN
    assert desk.event(number, "survey_queued")["detail"] == {"channel": "mail", "to": LIN}


def test_the_sweep_command_sends_the_survey(
    desk: Desk, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    number = desk.report()
    resolve(desk.engine, load_context(desk.engine, desk.settings), number, by="Wang", now=T0)
    closes_at = desk.ticket(number)["auto_close_at"]
    config = desk_config(desk, tmp_path)
    assert main(["sweep", "--config", str(config), "--now", closes_at.isoformat()]) == 0
    assert "closed 1 ticket(s)" in capsys.readouterr().out
    assert len(desk.outbox("survey")) == 1


def desk_config(desk: Desk, tmp_path: Path) -> Path:
    path = tmp_path / "intaked.toml"
    url = desk.settings.database.url
    path.write_text(f'[database]\nurl = "{url}"\n[outbound_mail]\nfrom_address = "helpdesk@example.com.tw"\n')
    return path
