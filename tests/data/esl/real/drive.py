#!/usr/bin/env python3
"""Drives a real FreeSWITCH 1.10.12 (mod_callcenter, loopback channels)
through one scenario of tests/data/esl/real/README.md, over its own event
socket connection (not the recorded one).

    drive.py SCENARIO [TEE_CONTROL_PORT]

Callers are `originate {origination_uuid=cNN,...}loopback/queue/default
&park()`: the loopback B leg answers and runs `callcenter support@default`;
killing the A leg (`uuid_kill cNN`) is the caller hanging up. Agents are
`loopback/agent-NNNN/default` contacts that answer and park.
"""
import socket, sys, time

T0 = time.time()


class Esl:
    def __init__(self, port=8021):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        self.frame()
        self.s.sendall(b"auth ClueCon\n\n")
        self.frame()

    def frame(self):
        while b"\n\n" not in self.buf:
            self.buf += self.s.recv(65536)
        head, self.buf = self.buf.split(b"\n\n", 1)
        h = dict(l.split(": ", 1) for l in head.decode().split("\n") if ": " in l)
        n = int(h.get("Content-Length", 0))
        while len(self.buf) < n:
            self.buf += self.s.recv(65536)
        body, self.buf = self.buf[:n], self.buf[n:]
        return h, body.decode()

    def api(self, cmd):
        self.s.sendall(f"api {cmd}\n\n".encode())
        while True:
            h, body = self.frame()
            if h.get("Content-Type") == "api/response":
                log(f"{cmd} -> {body!r}")
                return body


def log(msg):
    print(f"[{time.time() - T0:7.2f}] {msg}", flush=True)


def at(t):
    d = T0 + t - time.time()
    if d > 0:
        time.sleep(d)


def call(fs, n, number):
    fs.api(
        "originate {origination_uuid=c%02d,origination_caller_id_number=%s,"
        "origination_caller_id_name=Caller%02d,loopback_bowout=false}"
        "loopback/queue/default &park()" % (n, number, n)
    )


def hang(fs, n):
    fs.api("uuid_kill c%02d" % n)


def cut(port, secs):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(f"cut {secs}\n".encode())
    log("tee: " + c.recv(10).decode().strip() + f" (cut {secs}s)")
    c.close()


def outage(fs, ctl):
    # Scenario "outage": outcomes fired while the recorded connection is
    # down must come back from the resync lists (max-wait-time 10 s,
    # wrap-up 4 s).
    call(fs, 1, "13800000001")            # -> an agent at once
    at(1); call(fs, 2, "13800000002")     # -> the other agent
    at(3); call(fs, 3, "13800000003")     # waits
    at(4); call(fs, 4, "13800000004")     # waits
    at(5); cut(ctl, 14)                   # outage 5 s .. 19 s (+ backoff)
    at(6); call(fs, 5, "13800000005")     # first seen in a list
    at(7); hang(fs, 4)                    # abandons during the outage
    hang(fs, 1)                           # talk ends; 1000 wraps up 4 s
    # c03 is answered at ~11 s, during the outage; c05 times out at ~16 s
    at(16.5); fs.api("callcenter_config queue list members support@default")
    at(34); hang(fs, 3)
    at(36); hang(fs, 2)
    at(38); call(fs, 6, "13800000006")
    at(42); hang(fs, 6)
    at(48); cut(ctl, 2)                   # a second, short outage: the
    # abandoned rows of c04/c05 still linger in the list
    at(58); fs.api("callcenter_config queue list")
    fs.api("callcenter_config queue list members support@default")


def onbreak(fs, ctl):
    # Scenario "onbreak": a status set during a call; wire facts.
    call(fs, 10, "13800000010")           # -> an agent
    at(3); fs.api("callcenter_config agent get status 1000@default")
    fs.api("callcenter_config agent get status 1001@default")
    at(4); fs.api("callcenter_config agent set status 1000@default 'On Break'")
    fs.api("callcenter_config agent set status 1001@default 'On Break'")
    at(5); fs.api("callcenter_config queue list agents support@default")
    at(9); hang(fs, 10)
    at(12); fs.api("callcenter_config queue list agents support@default")
    at(14); fs.api("callcenter_config agent set status 1000@default Available")
    fs.api("callcenter_config agent set status 1001@default Available")
    at(16); fs.api("callcenter_config agent set status 1001@default 'Logged Out'")
    at(17); fs.api("callcenter_config queue list agents support@default")
    fs.api("callcenter_config agent set status 1001@default Available")
    at(19)


def ladder(fs, ctl):
    # Scenario "ladder" (ladder.toml): both support agents busy, a caller
    # waits 2 s, the ladder signs 2001@default (an expert on backoffice) in
    # (`tier add`); 2001 answers, nobody waits, the ladder signs 2001 out
    # (`tier del`) while it talks. The recording's last event is the end of
    # 2001's call; its wrap-up (6 s) is still running then.
    call(fs, 21, "13800000021")
    at(1); call(fs, 22, "13800000022")
    at(3); call(fs, 23, "13800000023")    # waits -> ladder signs in 2001
    at(9); fs.api("callcenter_config queue list tiers support@default")
    at(12); hang(fs, 21)
    at(14); hang(fs, 22)
    at(18); hang(fs, 23)
    at(20)


def manual(fs, ctl):
    # Scenario "manual" (live.toml, no ladder): "ladder" with the tier
    # added and deleted by hand, to tell the ladder's part from the rest.
    call(fs, 21, "13800000021")
    at(1); call(fs, 22, "13800000022")
    at(3); call(fs, 23, "13800000023")
    at(5); fs.api("callcenter_config tier add support@default 2001@default")
    at(12); hang(fs, 21)
    at(14); hang(fs, 22)
    at(18); hang(fs, 23)
    at(18.3); fs.api("callcenter_config tier del support@default 2001@default")
    at(20)


if __name__ == "__main__":
    fs = Esl()
    ctl = int(sys.argv[2]) if len(sys.argv) > 2 else 8122
    globals()[sys.argv[1]](fs, ctl)
    log("done")
