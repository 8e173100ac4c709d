# bench/dns/watch.py: how long until DNS servers stop (or start) answering a
# name with an address. Used by bench/gslb-failover.sh.
#
#   watch.py gone|back ADDR NAME TIMEOUT_S PORT [PORT...] [--kill PID]
#
# With --kill, sends SIGKILL to PID and starts the clock at that moment.
# Every 10 ms it asks each server (127.0.0.1:PORT, UDP, A) once; for each server
# it prints "PORT SECONDS", the time of the first answer that no longer holds
# ADDR (gone) or holds it (back), or "PORT timeout".
import os, signal, socket, struct, sys, time

mode, addr, name, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rest = sys.argv[5:]
kill = None
if "--kill" in rest:
    i = rest.index("--kill")
    kill = int(rest[i + 1])
    rest = rest[:i] + rest[i + 2:]
ports = [int(p) for p in rest]
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
if kill is not None:
    os.kill(kill, signal.SIGKILL)
done = {}
qid = 0
while len(done) < len(ports) and time.monotonic() - start < timeout:
    for port in ports:
        if port in done:
            continue
        qid = (qid + 1) & 0xFFFF
        sock.sendto(query(qid), ("127.0.0.1", port))
        try:
            while True:
                reply, _ = sock.recvfrom(4096)
                if reply[:2] == struct.pack(">H", qid):
                    break
        except socket.timeout:
            continue
        if holds(reply) == (mode == "back"):
            done[port] = time.monotonic() - start
    time.sleep(0.01)
for port in ports:
    print(port, "%.3f" % done[port] if port in done else "timeout")
