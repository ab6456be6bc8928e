#!/usr/bin/env python3
"""Records the raw AMI byte stream an acdmon-like client receives.

Logs in (plain), sends Ping + QueueStatus the way acdmon does on connect,
then appends every byte received to OUT. SIGUSR1: Ping + QueueStatus again
(a relist). Reconnects (new banner in the same file) if the peer goes away.
"""
import os, signal, socket, sys, time

host, port, user, secret, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
events = os.environ.get("EVENTS", "agent,call")
n = 0
sock = None
relist = False

def aid():
    global n
    n += 1
    return f"acdmon-{n}"

def send(action, **h):
    msg = f"Action: {action}\r\nActionID: {aid()}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    sock.sendall(msg.encode())

def on_usr1(*_):
    global relist
    relist = True

signal.signal(signal.SIGUSR1, on_usr1)
f = open(out, "ab", buffering=0)
while True:
    try:
        sock = socket.create_connection((host, port), timeout=2)
    except OSError:
        time.sleep(0.2)
        continue
    sock.settimeout(0.2)
    send("Login", Username=user, Secret=secret, Events=events)
    send("Ping")
    send("QueueStatus")
    while True:
        if relist:
            relist = False
            send("Ping")
            send("QueueStatus")
        try:
            b = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            b = b""
        if not b:
            break
        f.write(b)
    sock.close()
    time.sleep(0.3)
