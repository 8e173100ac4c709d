# bench/dns/queries.py PORT N: N UDP queries to 127.0.0.1:PORT, one at a time
# (A, AAAA with ECS, NXDOMAIN, weighted, SOA, out of zone), each awaited.
import socket, struct, sys
port = int(sys.argv[1]); n = int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
def q(i, name, t, ecs=False):
    h = struct.pack(">HHHHHH", i & 0xffff, 0, 1, 0, 0, 1)
    qn = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 11 if ecs else 0)
    if ecs: opt += struct.pack(">HHHBB", 8, 7, 1, 24, 0) + bytes([198, 51, 100])
    return h + qn + struct.pack(">HH", t, 1) + opt
names = [("app.global.example.com", 1, False), ("APP.global.example.com", 28, True), ("nope.global.example.com", 1, False), ("w.global.example.com", 1, False), ("global.example.com", 6, False), ("example.org", 1, False)]
for i in range(n):
    name, t, e = names[i % len(names)]
    s.sendto(q(i, name, t, e), ("127.0.0.1", port))
    s.recvfrom(2048)
print("sent", n)
