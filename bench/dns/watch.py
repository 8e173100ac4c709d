# bench/dns/watch.py: how long until DNS servers stop (or start) answering a
# name with an address. Used by bench/gslb-failover.sh.
#
#   watch.py gone|back ADDR NAME TIMEOUT_S SERVER [SERVER...] [--kill PID]... [--cmd CMD]
#
# A SERVER is PORT (127.0.0.1:PORT) or IP:PORT. With --kill (repeatable),
# sends SIGKILL to each PID, with --cmd runs the shell command CMD (e.g. a
# link going down), and starts the clock just before.
# Every 10 ms it asks each server (UDP, A) once; for each server it prints
# "SERVER SECONDS", the time of the first answer that no longer holds ADDR
# (gone) or holds it (back), or "SERVER timeout".
import os, signal, socket, struct, subprocess, sys, time

mode, addr, name, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rest = sys.argv[5:]
kills, cmd = [], None
while "--kill" in rest:
    i = rest.index("--kill")
    kills.append(int(rest[i + 1]))
    rest = rest[:i] + rest[i + 2:]
if "--cmd" in rest:
    i = rest.index("--cmd")
    cmd = rest[i + 1]
    rest = rest[:i] + rest[i + 2:]
servers = rest
def address(server):
    host, _, port = server.rpartition(":")
    return (host or "127.0.0.1", int(port))
want = socket.inet_aton(addr)

def query(qid):
    qn = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + qn + struct.pack(">HH", 1, 1)

def holds(reply):
    # Answer section A records: scan for ADDR as a 4-byte RDATA after the question.
    an = struct.unpack(">H", reply[6:8])[0]
    p = 12
    while reply[p] != 0:
        p += 1 + reply[p]
    p += 5
    for _ in range(an):
        p += 2 if reply[p] & 0xC0 == 0xC0 else 0  # owner is a pointer here
        rtype, _, _, rdlen = struct.unpack(">HHIH", reply[p:p + 10])
        p += 10
        if rtype == 1 and reply[p:p + rdlen] == want:
            return True
        p += rdlen
    return False

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.5)
start = time.monotonic()
for pid in kills:
    os.kill(pid, signal.SIGKILL)
if cmd is not None:
    subprocess.run(cmd, shell=True, check=True)
done = {}
qid = 0
while len(done) < len(servers) and time.monotonic() - start < timeout:
    for server in servers:
        if server in done:
            continue
        qid = (qid + 1) & 0xFFFF
        sock.sendto(query(qid), address(server))
        try:
            while True:
                reply, _ = sock.recvfrom(4096)
                if reply[:2] == struct.pack(">H", qid):
                    break
        except socket.timeout:
            continue
        if holds(reply) == (mode == "back"):
            done[server] = time.monotonic() - start
    time.sleep(0.01)
for server in servers:
    print(server, "%.3f" % done[server] if server in done else "timeout")
