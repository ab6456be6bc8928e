#!/usr/bin/env python3
"""Writes the ESL transcripts in this folder.

No FreeSWITCH runs here, so these transcripts are synthesized, byte for byte,
by the rules FreeSWITCH's own code follows (protocols.md section 2;
mod_event_socket.c, switch_event.c, mod_callcenter.c at cc93a683):

- frames: `Content-Length: n` + `Content-Type: text/event-plain` + blank
  line + n bytes; replies `Content-Type: command/reply` + `Reply-Text`;
  `api/response` with a `Content-Length` body; LF line ends;
- event bodies: `Name: value` lines in FreeSWITCH's header order
  (Event-Subclass first, channel data, the CC-* headers, then the core
  headers Event-Name ... Event-Sequence), values URL-encoded with
  SWITCH_URL_UNSAFE plus every byte outside ' '..'~' in upper-case hex, an
  existing %XX left as is, an empty value written `_undef_`, and a final
  blank line;
- mod_callcenter's event order for each call path, its CC-*-Time headers in
  epoch seconds, its list output (header row only with the first row, final
  `+OK`).

Run it from anywhere: python3 tests/data/esl/make_transcripts.py
"""

import datetime as dt
import os

HERE = os.path.dirname(os.path.abspath(__file__))
UNSAFE = set("\r\n #%&+:;<=>?@[\\]^`{|}\"")
HEX = "0123456789ABCDEF"
TZ = dt.timezone(dt.timedelta(hours=8))  # the switch runs on Asia/Shanghai


def url_encode(v: str) -> str:
    b = v.encode("utf-8")
    out = []
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x25 and i + 2 < len(b) and chr(b[i + 1]) in HEX and chr(b[i + 2]) in HEX:
            out.append("%")  # switch_url_encode leaves an existing %XX alone
        elif c < 0x20 or c > 0x7E or chr(c) in UNSAFE:
            out.append("%" + HEX[c >> 4] + HEX[c & 15])
        else:
            out.append(chr(c))
        i += 1
    return "".join(out)


def at(h, m, s, frac_us=0):
    """Epoch microseconds of 2026-11-23 h:m:s in the switch's zone."""
    t = dt.datetime(2026, 11, 23, h, m, s, tzinfo=TZ)
    return int(t.timestamp()) * 1_000_000 + frac_us


def secs(us):
    return us // 1_000_000


AUTH_REQUEST = b"Content-Type: auth/request\n\n"


def reply(text):
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def api(body: str):
    b = body.encode("utf-8")
    return f"Content-Type: api/response\nContent-Length: {len(b)}\n\n".encode() + b


def disconnect_notice(msg="Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"):
    b = msg.encode()
    return f"Content-Type: text/disconnect-notice\nContent-Length: {len(b)}\n\n".encode() + b


QUEUE_COLS = ("name|strategy|moh_sound|time_base_score|tier_rules_apply|tier_rule_wait_second|"
              "tier_rule_wait_multiply_level|tier_rule_no_agent_no_wait|discard_abandoned_after|"
              "abandoned_resume_allowed|max_wait_time|max_wait_time_with_no_agent|"
              "max_wait_time_with_no_agent_time_reached|record_template|calls_answered|calls_abandoned|"
              "ring_progressively_delay|skip_agents_with_external_calls|agent_no_answer_status")
AGENT_COLS = ("name|instance_id|uuid|type|contact|status|state|max_no_answer|wrap_up_time|"
              "reject_delay_time|busy_delay_time|no_answer_delay_time|last_bridge_start|last_bridge_end|"
              "last_offered_call|last_status_change|no_answer_count|calls_answered|talk_time|ready_time|"
              "external_calls_count")
MEMBER_COLS = ("queue|instance_id|uuid|session_uuid|cid_number|cid_name|system_epoch|joined_epoch|"
               "rejoined_epoch|bridge_epoch|abandoned_epoch|base_score|skill_score|serving_agent|"
               "serving_system|state|score")
TIER_COLS = "queue|agent|state|level|position"


def table(cols, rows):
    if not rows:
        return "+OK\n"
    return cols + "\n" + "".join("|".join(str(x) for x in r) + "\n" for r in rows) + "+OK\n"


def queue_list(names, answered=0, abandoned=0):
    return api(table(QUEUE_COLS, [
        [n, "longest-idle-agent", "local_stream://moh", "system", "false", 300, "true", "false", 60,
         "false", 60, 0, 5, "", answered, abandoned, 10, "false", "On Break"] for n in names]))


def agent_row(name, status, state, wrap=10, reject=10, busy=10, no_answer=30, last_end=0, ready=0,
              contact=None):
    contact = contact or f"[leg_timeout=15]user/{name}"
    return [name, "single_box", "", "Callback", contact, status, state, 3, wrap, reject, busy,
            no_answer, 0, last_end, 0, 0, 0, 0, 0, ready, 0]


def member_row(queue, uuid, session, number, name, joined, state="Waiting", agent="", now=0):
    return [queue, "single_box", uuid, session, number, name, joined, joined, 0, 0, 0, 0, 0, agent,
            "single_box" if agent else "", state, max(0, now - joined)]


class Switch:
    """Builds event frames as one FreeSWITCH would send them."""

    def __init__(self, core="9f1b6c3e-52a4-4c36-9a8e-0c2d3e4f5a60", seq=4000):
        self.core = core
        self.seq = seq

    def event(self, t_us, cc, channel=(), func="cc_agent_update", line=1046):
        self.seq += 1
        when = dt.datetime.fromtimestamp(t_us / 1e6, TZ)
        gmt = dt.datetime.fromtimestamp(t_us // 1_000_000, dt.timezone.utc)
        hdrs = [("Event-Subclass", "callcenter::info")]
        hdrs += list(channel)
        hdrs += list(cc)
        hdrs += [
            ("Event-Name", "CUSTOM"),
            ("Core-UUID", self.core),
            ("FreeSWITCH-Hostname", "fs1.example.net"),
            ("FreeSWITCH-Switchname", "fs1.example.net"),
            ("FreeSWITCH-IPv4", "10.0.0.5"),
            ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", when.strftime("%Y-%m-%d %H:%M:%S")),
            ("Event-Date-GMT", gmt.strftime("%a, %d %b %Y %H:%M:%S GMT")),
            ("Event-Date-Timestamp", str(t_us)),
            ("Event-Calling-File", "mod_callcenter.c"),
            ("Event-Calling-Function", func),
            ("Event-Calling-Line-Number", str(line)),
            ("Event-Sequence", str(self.seq)),
        ]
        body = "".join(f"{k}: {url_encode(str(v)) or '_undef_'}\n" for k, v in hdrs) + "\n"
        b = body.encode()
        return f"Content-Length: {len(b)}\nContent-Type: text/event-plain\n\n".encode() + b

    # --- channel data -------------------------------------------------
    @staticmethod
    def member_channel(call, joined_s=None, queue=None):
        ch = [
            ("Channel-State", "CS_EXECUTE"),
            ("Channel-Call-State", "ACTIVE"),
            ("Channel-Name", f"sofia/external/{call['number']}@203.0.113.7"),
            ("Unique-ID", call["session"]),
            ("Call-Direction", "inbound"),
            ("Answer-State", "answered"),
            ("Caller-Caller-ID-Name", call["name"]),
            ("Caller-Caller-ID-Number", call["number"]),
            ("Caller-Destination-Number", "4000"),
            ("Caller-Unique-ID", call["session"]),
            ("variable_sip_from_user", call["number"]),
            ("variable_cc_side", "member"),
        ]
        if queue:
            ch.append(("variable_cc_queue", queue))
        if joined_s is not None:
            ch.append(("variable_cc_queue_joined_epoch", str(joined_s)))
        return ch

    @staticmethod
    def agent_channel(agent, agent_uuid, call, queue):
        return [
            ("Channel-State", "CS_EXCHANGE_MEDIA"),
            ("Channel-Call-State", "ACTIVE"),
            ("Channel-Name", f"sofia/internal/{agent}"),
            ("Unique-ID", agent_uuid),
            ("Call-Direction", "outbound"),
            ("Answer-State", "answered"),
            ("Caller-Caller-ID-Name", call["name"]),
            ("Caller-Caller-ID-Number", call["number"]),
            ("variable_cc_side", "agent"),
            ("variable_cc_queue", queue),
            ("variable_cc_agent", agent),
            ("variable_cc_member_uuid", call["uuid"]),
        ]

    # --- mod_callcenter events, header order as in mod_callcenter.c ----
    def member_queue_start(self, t, q, c, resume=False):
        return self.event(t, [
            ("CC-Queue", q),
            ("CC-Action", "member-queue-resume" if resume else "member-queue-start"),
            ("CC-Member-UUID", c["uuid"]),
            ("CC-Member-Session-UUID", c["session"]),
            ("CC-Member-CID-Name", c["name"]),
            ("CC-Member-CID-Number", c["number"]),
        ], self.member_channel(c, secs(t), q), "callcenter_function", 3121)

    def members_count(self, t, q, n):
        return self.event(t, [("CC-Queue", q), ("CC-Action", "members-count"),
                              ("CC-Count", str(n)), ("CC-Selection", "Single-Queue")],
                          func="cc_queue_count", line=883)

    def agent_state(self, t, agent, state):
        return self.event(t, [("CC-Agent", agent), ("CC-Action", "agent-state-change"),
                              ("CC-Agent-State", state)], line=1071)

    def agent_status(self, t, agent, status):
        return self.event(t, [("CC-Agent", agent), ("CC-Action", "agent-status-change"),
                              ("CC-Agent-Status", status)], line=1047)

    def agent_offering(self, t, q, agent, c):
        return self.event(t, [
            ("CC-Queue", q), ("CC-Action", "agent-offering"), ("CC-Agent", agent),
            ("CC-Agent-Type", "Callback"), ("CC-Agent-System", "single_box"),
            ("CC-Member-UUID", c["uuid"]), ("CC-Member-Session-UUID", c["session"]),
            ("CC-Member-CID-Name", c["name"]), ("CC-Member-CID-Number", c["number"]),
            ("CC-Member-DNIS", ""),
        ], func="outbound_agent_thread_run", line=1732)

    def bridge_start(self, t, q, agent, auuid, c, called, answered, joined):
        return self.event(t, [
            ("CC-Queue", q), ("CC-Action", "bridge-agent-start"), ("CC-Agent", agent),
            ("CC-Agent-System", "single_box"), ("CC-Agent-UUID", auuid),
            ("CC-Agent-Called-Time", str(called)), ("CC-Agent-Answered-Time", str(answered)),
            ("CC-Member-Joined-Time", str(joined)), ("CC-Member-UUID", c["uuid"]),
            ("CC-Member-Session-UUID", c["session"]), ("CC-Member-CID-Name", c["name"]),
            ("CC-Member-CID-Number", c["number"]), ("CC-Member-DNIS", ""),
        ], self.agent_channel(agent, auuid, c, q), "outbound_agent_thread_run", 1952)

    def bridge_end(self, t, q, agent, auuid, c, called, answered, joined, ended, bridged=True,
                   cause="NORMAL_CLEARING"):
        return self.event(t, [
            ("CC-Queue", q), ("CC-Action", "bridge-agent-end"), ("CC-Hangup-Cause", cause),
            ("CC-Agent", agent), ("CC-Agent-System", "single_box"), ("CC-Agent-UUID", auuid),
            ("CC-Agent-Bridged", "true" if bridged else "false"),
            ("CC-Agent-Called-Time", str(called)), ("CC-Agent-Answered-Time", str(answered)),
            ("CC-Member-Joined-Time", str(joined)), ("CC-Bridge-Terminated-Time", str(ended)),
            ("CC-Member-UUID", c["uuid"]), ("CC-Member-Session-UUID", c["session"]),
            ("CC-Member-CID-Name", c["name"]), ("CC-Member-CID-Number", c["number"]),
        ], self.agent_channel(agent, auuid, c, q), "outbound_agent_thread_run", 2079)

    def member_end_terminated(self, t, q, agent, auuid, c, called, answered, leaving, joined,
                              cause="NORMAL_CLEARING"):
        return self.event(t, [
            ("CC-Queue", q), ("CC-Action", "member-queue-end"), ("CC-Hangup-Cause", cause),
            ("CC-Cause", "Terminated"), ("CC-Agent", agent), ("CC-Agent-System", "single_box"),
            ("CC-Agent-UUID", auuid), ("CC-Agent-Called-Time", str(called)),
            ("CC-Agent-Answered-Time", str(answered)), ("CC-Member-Leaving-Time", str(leaving)),
            ("CC-Member-Joined-Time", str(joined)), ("CC-Member-UUID", c["uuid"]),
            ("CC-Member-Session-UUID", c["session"]), ("CC-Member-CID-Name", c["name"]),
            ("CC-Member-CID-Number", c["number"]),
        ], self.member_channel(c, joined, q), "outbound_agent_thread_run", 2122)

    def member_end_cancel(self, t, q, c, leaving, joined, reason):
        return self.event(t, [
            ("CC-Queue", q), ("CC-Action", "member-queue-end"),
            ("CC-Member-Leaving-Time", str(leaving)), ("CC-Member-Joined-Time", str(joined)),
            ("CC-Cause", "Cancel"), ("CC-Cancel-Reason", reason),
            ("CC-Member-UUID", c["uuid"]), ("CC-Member-Session-UUID", c["session"]),
            ("CC-Member-CID-Name", c["name"]), ("CC-Member-CID-Number", c["number"]),
        ], self.member_channel(c, joined, q), "callcenter_function", 3286)

    def bridge_fail(self, t, q, agent, c, called, aborted, joined, cause):
        return self.event(t, [
            ("CC-Queue", q), ("CC-Action", "bridge-agent-fail"), ("CC-Hangup-Cause", cause),
            ("CC-Agent", agent), ("CC-Agent-System", "single_box"),
            ("CC-Agent-Called-Time", str(called)), ("CC-Agent-Aborted-Time", str(aborted)),
            ("CC-Member-UUID", c["uuid"]), ("CC-Member-Session-UUID", c["session"]),
            ("CC-Member-CID-Name", c["name"]), ("CC-Member-CID-Number", c["number"]),
            ("CC-Member-Joined-Time", str(joined)),
        ], func="outbound_agent_thread_run", line=2213)


def call(n, number, name):
    return {"uuid": f"7c0e{n:04d}-1d2e-4f5a-8b9c-{n:012d}",
            "session": f"a1b2{n:04d}-3c4d-4e5f-9a0b-{n:012d}",
            "number": number, "name": name}


def answered_call(sw, q, agent, auuid, c, join, offer, answer, end, count_after_join,
                  count_after_answer, on_demand=False):
    """The events of a call answered by `agent` (times in µs)."""
    j, o, a, e = secs(join), secs(offer), secs(answer), secs(end)
    return [
        sw.member_queue_start(join, q, c),
        sw.members_count(join + 900, q, count_after_join),
        sw.agent_state(offer, agent, "Receiving"),
        sw.agent_offering(offer + 300, q, agent, c),
        sw.bridge_start(answer, q, agent, auuid, c, o, a, j),
        sw.agent_state(answer + 2_000, agent, "In a queue call"),
        sw.members_count(answer + 3_000, q, count_after_answer),
    ], [
        sw.bridge_end(end, q, agent, auuid, c, o, a, j, e),
        sw.member_end_terminated(end + 1_500, q, agent, auuid, c, o, a, e, j),
        sw.agent_state(end + 2_500, agent, "Idle" if on_demand else "Waiting"),
    ]


def handshake(queues, agents, members, tiers):
    out = [AUTH_REQUEST, reply("+OK accepted"), reply("+OK event listener enabled plain"),
           queue_list(queues)]
    for q in queues:
        out.append(api(table(AGENT_COLS, agents.get(q, []))))
        out.append(api(table(MEMBER_COLS, members.get(q, []))))
        out.append(api(table(TIER_COLS, tiers.get(q, []))))
    return out


def write(name, frames):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(b"".join(frames))


Q = "support@default"
A0, A1 = "1000@default", "1001@default"


def day():
    """The recorded morning of tests/esl_replay.rs (expected figures there)."""
    sw = Switch()
    agents = {Q: [agent_row(A0, "Available", "Waiting", wrap=10, no_answer=30),
                  agent_row(A1, "Available", "Waiting", wrap=10, no_answer=30,
                            contact="[leg_timeout=15]user/1001@default|sofia/gateway/gw1/13900001001")]}
    tiers = {Q: [[Q, A0, "Ready", 1, 1], [Q, A1, "Ready", 1, 2]]}
    f = handshake([Q], agents, {}, tiers)
    c = {i: call(i, f"+86 138 0000 {i:04d}", n) for i, n in
         [(1, "Li Na"), (2, "王伟"), (3, "Zhang Min"), (4, "Liu Yang"), (5, "Chen Jie"),
          (6, "Yang Fan"), (7, "O'Brien & Sons"), (8, "Zhao Lei"), (9, "Huang Li")]}
    ev = []  # (time_us, frame) sorted at the end
    au0 = "b0000001-aaaa-4bbb-8ccc-000000000001"

    # c1 09:00:00 answered by 1000 at 09:00:08 (wait 8), talk 180 s to 09:03:08.
    s, e = answered_call(sw, Q, A0, au0, c[1], at(9, 0, 0, 120_000), at(9, 0, 2, 10_000),
                         at(9, 0, 8, 400_000), at(9, 3, 8, 200_000), 1, 0)
    ev += s + e
    # The status-change that fires without a change (1001 is already Available).
    ev.append(sw.agent_status(at(9, 0, 30), A1, "Available"))
    # c2 09:01:00: 1001 does not answer (NO_ANSWER at 09:01:16; its
    # no-answer-delay-time is 30 s, paused to 09:01:46), then takes it at
    # 09:01:50 (wait 50: outside the 20 s threshold), talk 240 s to 09:05:50.
    j2 = at(9, 1, 0, 50_000)
    ev += [sw.member_queue_start(j2, Q, c[2]), sw.members_count(j2 + 900, Q, 1),
           sw.agent_state(at(9, 1, 1), A1, "Receiving"),
           sw.agent_offering(at(9, 1, 1, 300), Q, A1, c[2]),
           sw.bridge_fail(at(9, 1, 16, 5_000), Q, A1, c[2], secs(at(9, 1, 1)), secs(at(9, 1, 16)),
                          secs(j2), "NO_ANSWER"),
           sw.agent_state(at(9, 1, 16, 9_000), A1, "Waiting")]
    au1 = "b0000002-aaaa-4bbb-8ccc-000000000002"
    o2, a2, x2 = at(9, 1, 46, 200_000), at(9, 1, 50, 100_000), at(9, 5, 50, 300_000)
    ev += [sw.agent_state(o2, A1, "Receiving"), sw.agent_offering(o2 + 300, Q, A1, c[2]),
           sw.bridge_start(a2, Q, A1, au1, c[2], secs(o2), secs(a2), secs(j2)),
           sw.agent_state(a2 + 2_000, A1, "In a queue call"),
           sw.members_count(a2 + 3_000, Q, 0),
           sw.bridge_end(x2, Q, A1, au1, c[2], secs(o2), secs(a2), secs(j2), secs(x2)),
           sw.member_end_terminated(x2 + 1_500, Q, A1, au1, c[2], secs(o2), secs(a2), secs(x2),
                                    secs(j2)),
           sw.agent_state(x2 + 2_500, A1, "Waiting")]
    # c3 09:02:00, caller hangs up at 09:02:03 (short abandon, BREAK_OUT).
    j3 = at(9, 2, 0, 200_000)
    ev += [sw.member_queue_start(j3, Q, c[3]), sw.members_count(j3 + 900, Q, 1),
           sw.member_end_cancel(at(9, 2, 3, 700_000), Q, c[3], secs(at(9, 2, 3)), secs(j3),
                                "BREAK_OUT"),
           sw.members_count(at(9, 2, 3, 800_000), Q, 0)]
    # c4 09:02:30, hangs up at 09:03:00 (abandon after 30 s).
    j4 = at(9, 2, 30, 10_000)
    ev += [sw.member_queue_start(j4, Q, c[4]), sw.members_count(j4 + 900, Q, 1),
           sw.member_end_cancel(at(9, 3, 0, 40_000), Q, c[4], secs(at(9, 3, 0)), secs(j4),
                                "BREAK_OUT"),
           sw.members_count(at(9, 3, 0, 90_000), Q, 0)]
    # c5 09:03:10: 1000 is in wrap-up to 09:03:18 (no event says so); offered
    # at 09:03:19, answered 09:03:25 (wait 15), talk 120 s to 09:05:25.
    au2 = "b0000003-aaaa-4bbb-8ccc-000000000003"
    s, e = answered_call(sw, Q, A0, au2, c[5], at(9, 3, 10, 500_000), at(9, 3, 19, 100_000),
                         at(9, 3, 25, 600_000), at(9, 5, 25, 700_000), 1, 0)
    ev += s + e
    # c6 09:04:00, presses the exit key at 09:04:40.
    j6 = at(9, 4, 0, 30_000)
    ev += [sw.member_queue_start(j6, Q, c[6]), sw.members_count(j6 + 900, Q, 1),
           sw.member_end_cancel(at(9, 4, 40, 500_000), Q, c[6], secs(at(9, 4, 40)), secs(j6),
                                "EXIT_WITH_KEY"),
           sw.members_count(at(9, 4, 40, 600_000), Q, 0)]
    # c7 09:05:00; 1000 goes On Break at 09:05:30 in the middle of its wrap-up
    # (09:05:25-09:05:35), 1001 is busy then in wrap-up to 09:06:00; c7 times
    # out at 09:06:00 (max-wait-time 60).
    j7 = at(9, 5, 0, 0)
    ev += [sw.member_queue_start(j7, Q, c[7]), sw.members_count(j7 + 900, Q, 1),
           sw.agent_status(at(9, 5, 30, 250_000), A0, "On Break"),
           sw.member_end_cancel(at(9, 6, 0, 300_000), Q, c[7], secs(at(9, 6, 0)), secs(j7),
                                "TIMEOUT"),
           sw.members_count(at(9, 6, 0, 400_000), Q, 0)]
    # c8 09:06:30, answered by 1001 at 09:06:40 (wait 10), still talking at the end.
    au3 = "b0000004-aaaa-4bbb-8ccc-000000000004"
    s, _ = answered_call(sw, Q, A1, au3, c[8], at(9, 6, 30, 0), at(9, 6, 31, 0),
                         at(9, 6, 40, 800_000), at(9, 20, 0), 1, 0)
    ev += s
    # c9 09:07:00, still waiting; 1000 back from break at 09:08:00.
    j9 = at(9, 7, 0, 0)
    ev += [sw.member_queue_start(j9, Q, c[9]), sw.members_count(j9 + 900, Q, 1),
           sw.agent_status(at(9, 8, 0, 0), A0, "Available")]

    ev.sort(key=lambda fr: int(fr.split(b"Event-Date-Timestamp: ")[1].split(b"\n")[0]))
    # Sequence numbers in send order.
    seq = 4100
    fixed = []
    for fr in ev:
        head, body = fr.split(b"\n\n", 1)
        pre, rest = body.split(b"Event-Sequence: ", 1)
        seq += 1
        body = pre + b"Event-Sequence: " + str(seq).encode() + b"\n\n"
        fixed.append(f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body)
    write("day.esl", f + fixed)


def reconnect():
    """Two connections and a sequence gap (tests/esl_live.rs)."""
    sw = Switch(seq=199)
    m = {i: call(100 + i, f"1380000{i:04d}", f"Caller {i}") for i in range(4)}
    base = secs(at(10, 0, 0))
    agents = [agent_row(A0, "Available", "Waiting"), agent_row(A1, "Available", "Waiting")]
    tiers = [[Q, A0, "Ready", 1, 1], [Q, A1, "Ready", 1, 1]]
    conn1 = handshake([Q], {Q: agents},
                      {Q: [member_row(Q, m[0]["uuid"], m[0]["session"], m[0]["number"], m[0]["name"],
                                      base - 40, now=base)]},
                      {Q: tiers})
    conn1 += [sw.member_queue_start(at(10, 0, 5), Q, m[1]), sw.members_count(at(10, 0, 5, 900), Q, 2)]
    # The connection drops here; FreeSWITCH keeps running: 1000 goes on
    # break, m0 leaves, m2 joins. None of it reaches us.
    sw.seq = 300
    agents2 = [agent_row(A0, "On Break", "Waiting"), agent_row(A1, "Available", "Waiting")]
    conn2 = handshake([Q], {Q: agents2},
                      {Q: [member_row(Q, m[1]["uuid"], m[1]["session"], m[1]["number"], m[1]["name"],
                                      base + 5, now=base + 30),
                           member_row(Q, m[2]["uuid"], m[2]["session"], m[2]["number"], m[2]["name"],
                                      base + 20, now=base + 30)]},
                      {Q: tiers})
    conn2 += [sw.member_end_cancel(at(10, 0, 40), Q, m[1], base + 40, base + 5, "BREAK_OUT"),
              sw.members_count(at(10, 0, 40, 100), Q, 1)]
    # A jump of 600 in Event-Sequence (our listener lost events).
    sw.seq = 900
    conn2 += [sw.agent_status(at(10, 0, 50), A0, "Available")]
    agents3 = [agent_row(A0, "Available", "Waiting"), agent_row(A1, "Available", "Waiting")]
    conn2 += [queue_list([Q]), api(table(AGENT_COLS, agents3)),
              api(table(MEMBER_COLS, [member_row(Q, m[2]["uuid"], m[2]["session"], m[2]["number"],
                                                 m[2]["name"], base + 20, now=base + 51)])),
              api(table(TIER_COLS, tiers))]
    conn2 += [sw.member_queue_start(at(10, 0, 55), Q, m[3])]
    write("reconnect.esl", conn1 + conn2)


def cti():
    """A switch where 1002 is logged out and in no queue (tests/esl_live.rs)."""
    agents = [agent_row(A0, "Available", "Waiting")]
    write("cti.esl", handshake([Q, "sales@default"], {Q: agents}, {}, {Q: [[Q, A0, "Ready", 1, 1]]}))


def raw_event(body):
    return f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body


def garbage():
    """Real frames with garbage, bad lengths and foreign frames between them."""
    sw = Switch(seq=50)
    c = call(500, "1390000500", "Garbage Test")
    f = handshake([Q], {Q: [agent_row(A0, "Available", "Waiting")]}, {}, {Q: [[Q, A0, "Ready", 1, 1]]})
    f += [b"this line is not a frame\nneither: is this one\nnor that\n\n",
          sw.member_queue_start(at(11, 0, 0), Q, c),
          b"Content-Type: log/data\nContent-Length: 12\nLog-Level: 7\n\nhello world\n",
          b"Content-Length: banana\nContent-Type: text/event-plain\n\n",
          raw_event(b"no colon on this line\n\n"),
          b"Content-Length: 2\nContent-Type: text/event-json\n\n{]",
          b"\x00\xff\xfe binary junk \x01\n\n",
          sw.member_end_cancel(at(11, 0, 12), Q, c, secs(at(11, 0, 12)), secs(at(11, 0, 0)),
                               "NO_AGENT_TIMEOUT")]
    write("garbage.esl", f)


if __name__ == "__main__":
    day()
    reconnect()
    cti()
    garbage()
