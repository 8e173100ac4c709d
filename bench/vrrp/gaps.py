#!/usr/bin/env python3
"""Protocol-level takeover gaps from a capture of B's bridge port (bench/vrrp.sh).

For every first advertisement of B (192.0.2.2) after a run of at least three
of A's (192.0.2.1) with B silent (B was backup; a heal where both were master
interleaves them): the time since A's last advertisement. After a priority 0 from A that is the
graceful handover (RFC: Skew_Time); after silence (crash, link down) it is
Master_Down_Interval minus the phase of the kill. Prints one line per kind:
n, median, min, max in seconds. Usage: gaps.py LABEL FILE.pcap
"""
import statistics
import struct
import sys

A, B = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])


def adverts(path):
    data = open(path, "rb").read()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 112 or len(ip) < ihl + 8:
            continue
        yield sec + frac * scale, ip[12:16], ip[ihl + 2]


def main():
    label, path = sys.argv[1], sys.argv[2]
    gaps = {"after-priority-0": [], "after-silence": []}
    last_a = None  # (time, priority) of A's latest advert in the current run
    run = 0  # A's adverts since B's last
    for t, src, prio in adverts(path):
        if src == A:
            last_a = (t, prio)
            run += 1
        elif src == B:
            if last_a is not None and run >= 3:
                kind = "after-priority-0" if last_a[1] == 0 else "after-silence"
                gaps[kind].append(t - last_a[0])
            last_a, run = None, 0
    for kind, v in gaps.items():
        if v:
            print(f"{label}\tpcap-gap-{kind}\t{len(v)}\t{statistics.median(v):.4f}\t{min(v):.4f}\t{max(v):.4f}")


main()
