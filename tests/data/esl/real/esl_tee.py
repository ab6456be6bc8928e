#!/usr/bin/env python3
"""Records what an event-socket client receives: a TCP proxy between the
client (acdmon's ESL source) and FreeSWITCH that appends every byte the
server sends to a capture file, across reconnects. `acdmon replay --format
esl` reads that file.

    esl_tee.py LISTEN_PORT FS_HOST:FS_PORT CAPTURE [CONTROL_PORT]

Outage simulation: connect to CONTROL_PORT (default LISTEN_PORT+100) and
send `cut N`: the client's connection is closed and new connections are
refused (nothing listens) for N seconds (FreeSWITCH itself keeps running, as it does when a
network path or the listener fails).
"""
import socket, sys, threading, time

listen_port = int(sys.argv[1])
fs_host, fs_port = sys.argv[2].rsplit(":", 1)
capture = open(sys.argv[3], "ab", buffering=0)
# What the client sent, each write prefixed with its wall time (diagnosis
# only; replay does not read it).
sent = open(sys.argv[3] + ".sent", "ab", buffering=0)
control_port = int(sys.argv[4]) if len(sys.argv) > 4 else listen_port + 100
lock = threading.Lock()
blackout_until = 0.0
live = []  # (client, server) sockets


def pump(src, dst, record):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            if record:
                with lock:
                    capture.write(b)
            else:
                sent.write(b"# %.3f\n" % time.time() + b)
            dst.sendall(b)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def listener():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(4)
    ls.settimeout(0.1)
    return ls


def serve():
    ls = listener()
    while True:
        if time.time() < blackout_until:
            # Nothing listens during an outage: connects are refused.
            if ls is not None:
                ls.close()
                ls = None
            time.sleep(0.1)
            continue
        if ls is None:
            ls = listener()
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        c.settimeout(None)
        s = socket.create_connection((fs_host, int(fs_port)))
        live.append((c, s))
        threading.Thread(target=pump, args=(s, c, True), daemon=True).start()
        threading.Thread(target=pump, args=(c, s, False), daemon=True).start()


def control():
    global blackout_until
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", control_port))
    ls.listen(2)
    while True:
        c, _ = ls.accept()
        words = c.recv(100).decode().split()
        if words and words[0] == "cut":
            blackout_until = time.time() + float(words[1])
            for cl, sv in live:
                for s in (cl, sv):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            live.clear()
            c.sendall(b"ok\n")
        c.close()


threading.Thread(target=control, daemon=True).start()
serve()
