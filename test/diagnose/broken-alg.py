"""A deliberately broken FTP ALG for tests: an Ethernet bridge between two
interfaces (AF_PACKET, no IP on either) that rewrites the address of every
PORT command it forwards into a longer text ("198,18,0,3" -> "198,18,0,003",
the same address for a server) and fixes the IP and TCP checksums, but never
shifts later sequence or acknowledgement numbers: the bug of an ALG without
sequence adjustment.

usage: broken-alg.py IF_A IF_B [--no-rewrite]
Prints "ready" once both sockets are bound; runs until killed.
"""
import re
import select
import socket
import struct
import sys

PACKET_OUTGOING = 4


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def forward(frame, mangle):
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return frame
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 6:
        return frame
    total = struct.unpack("!H", ip[2:4])[0]
    ip = ip[:total]
    tcp = ip[ihl:]
    doff = (tcp[12] >> 4) * 4
    payload = tcp[doff:]
    m = re.match(rb"PORT (\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\r\n", payload)
    if m and mangle:
        nums = list(m.groups())
        nums[3] = b"%03d" % int(nums[3])
        payload = b"PORT " + b",".join(nums) + b"\r\n"
    header = bytearray(ip[:ihl])
    tcph = bytearray(tcp[:doff])
    struct.pack_into("!H", header, 2, ihl + doff + len(payload))
    struct.pack_into("!H", header, 10, 0)
    struct.pack_into("!H", header, 10, checksum(bytes(header)))
    # The kernel may hand over a partial checksum (offload): always recompute.
    struct.pack_into("!H", tcph, 16, 0)
    pseudo = bytes(header[12:20]) + struct.pack("!BBH", 0, 6, doff + len(payload))
    struct.pack_into("!H", tcph, 16, checksum(pseudo + bytes(tcph) + payload))
    return frame[:14] + bytes(header) + bytes(tcph) + payload


def main():
    a, b = sys.argv[1], sys.argv[2]
    mangle = "--no-rewrite" not in sys.argv
    socks = {}
    for name in (a, b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.bind((name, 0))
        socks[s] = name
    other = {sa: sb for sa in socks for sb in socks if sa is not sb}
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select(list(socks), [], [])
        for s in ready:
            frame, addr = s.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING:
                continue
            out = forward(frame, mangle)
            try:
                other[s].send(out)
            except OSError:
                pass


main()
