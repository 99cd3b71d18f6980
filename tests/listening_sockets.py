"""The machine's listening TCP sockets and the processes holding them, read from /proc (like ``ss -ltnp``)."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    pid: int | None
    process: str

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port} ({self.process} pid {self.pid})"


def _address(hex_ip: str) -> str:
    raw = bytes.fromhex(hex_ip)
    # /proc prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words)


def _socket_owners() -> dict[int, int]:
    owners: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners[int(target[8:-1])] = int(entry.name)
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return owners


def _process_name(pid: int | None) -> str:
    if pid is None:
        return "?"
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def listeners() -> list[Listener]:
    owners = _socket_owners()
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] != LISTEN:
                continue
            hex_ip, hex_port = cols[1].split(":")
            pid = owners.get(int(cols[9]))
            found.append(Listener(_address(hex_ip), int(hex_port, 16), pid, _process_name(pid)))
    return sorted(found, key=lambda item: (item.process, item.port))


def listeners_of(pids: set[int]) -> list[Listener]:
    return [item for item in listeners() if item.pid in pids]


def owner_of(port: int) -> int | None:
    return next((item.pid for item in listeners() if item.port == port and item.pid is not None), None)
